//! `lua/time.lua`, the calendar the scripts stamp with, run inside a real Redis on chosen
//! instants: a local `redis` table shadows the real one so `TIME` answers what the test asks,
//! and every stamp must equal chrono's RFC 3339 rendering of that instant.

use chrono::{DateTime, SecondsFormat};
use redis::Script;

const TIME_LUA: &str = include_str!("../lua/time.lua");

/// Evaluates `redis_now` at `count` instants from `start` seconds, `step` seconds apart, with
/// `micros` microseconds; returns the stamps, and the millisecond clock of the first instant.
async fn stamps(
    conn: &mut redis::aio::MultiplexedConnection,
    start: i64,
    step: i64,
    count: i64,
    micros: u32,
) -> (i64, Vec<String>) {
    let body = format!(
        "local t = {{'0', '0'}}\n\
         local redis = {{ call = function() return t end }}\n\
         {TIME_LUA}\n\
         local out, first = {{}}, nil\n\
         for i = 0, tonumber(ARGV[3]) - 1 do\n\
           t = {{ tostring(tonumber(ARGV[1]) + i * tonumber(ARGV[2])), ARGV[4] }}\n\
           local ms, iso = redis_now()\n\
           first = first or ms\n\
           out[#out + 1] = iso\n\
         end\n\
         return {{ first, out }}\n"
    );
    Script::new(&body)
        .arg(start)
        .arg(step)
        .arg(count)
        .arg(micros)
        .invoke_async(conn)
        .await
        .expect("time.lua")
}

fn expected(secs: i64, micros: u32) -> String {
    DateTime::from_timestamp(secs, micros * 1000)
        .expect("in range")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Redis-only: `time.lua` runs only inside Redis, on its `TIME`.
#[tokio::test]
async fn stamps_match_chrono_on_calendar_edges() {
    let redis = agentpool_testkit::TestRedis::start().await;
    let mut conn = redis.conn().await;
    let edges = [
        0,               // the epoch
        59,              // end of the first minute
        86_399,          // end of the first day
        68_169_600,      // 1972-02-29, first leap day
        951_782_400,     // 2000-02-29, a 400-year leap day
        951_868_799,     // 2000-02-29T23:59:59
        1_709_164_800,   // 2024-02-29
        1_735_689_599,   // 2024-12-31T23:59:59
        1_735_689_600,   // 2025-01-01
        2_147_483_647,   // the 32-bit limit
        4_107_456_000,   // 2100-02-28: 2100 is no leap year,
        4_107_542_400,   // so the next day is 2100-03-01
        253_402_300_799, // 9999-12-31T23:59:59
    ];
    for secs in edges {
        for micros in [0, 999, 1_000, 999_999] {
            let (ms, got) = stamps(&mut conn, secs, 0, 1, micros).await;
            assert_eq!(got, vec![expected(secs, micros)], "at {secs}s {micros}us");
            assert_eq!(ms, secs * 1000 + i64::from(micros / 1000), "ms at {secs}s");
        }
    }
}

/// Redis-only: `time.lua` runs only inside Redis, on its `TIME`.
#[tokio::test]
async fn stamps_match_chrono_across_five_centuries() {
    let redis = agentpool_testkit::TestRedis::start().await;
    let mut conn = redis.conn().await;
    // A step that is not a whole number of days walks every time of day as well; chunks keep
    // each script call short.
    let (step, chunk) = (97_213, 8_000);
    let mut last = String::new();
    for c in 0..20 {
        let start = c * chunk * step;
        let (_, got) = stamps(&mut conn, start, step, chunk, 123_456).await;
        assert_eq!(got.len(), chunk as usize);
        for (i, stamp) in got.iter().enumerate() {
            let secs = start + i as i64 * step;
            assert_eq!(stamp, &expected(secs, 123_456), "at {secs}s");
        }
        last = got.last().unwrap().clone();
    }
    assert!(last.starts_with("24"), "{last}");
}
