//! The fitting logic on real-looking rows of `agents` and `processes`.

use super::*;
use crate::cli::table::Table;
use crate::cli::{agents, processes};

const AGENT_IDS: [&str; 3] = [
    "01a2006c-fe5d-7341-a14f-b28cf331b4d2",
    "01a2006c-fe5d-7341-a14f-b28d27c7af27",
    "01a2006c-fe5d-7341-a14f-b28e7d4672fe",
];
const WORKER: &str = "01a2006c-fe5d-7341-a14f-b28f628688e8";

fn agents_table() -> Table {
    let mut t = Table::fitted(&agents::COLUMNS);
    for (id, status) in AGENT_IDS.iter().zip(["idle", "quarantined", "restarting"]) {
        let tail = &id[id.len() - 8..];
        t.row(vec![
            (*id).to_owned(),
            "business_analyst".to_owned(),
            format!("business_analyst-{tail}"),
            "business_analyst".to_owned(),
            status.to_owned(),
            WORKER.to_owned(),
            "12".to_owned(),
        ]);
    }
    t
}

fn processes_table() -> Table {
    let mut t = Table::fitted(&processes::COLUMNS);
    for id in AGENT_IDS {
        t.row(vec![
            id.to_owned(),
            "business_analyst".to_owned(),
            "4194304".to_owned(),
            "10/10".to_owned(),
            "draining".to_owned(),
            "123.4MiB".to_owned(),
            "100.0%".to_owned(),
            "2026-11-21T23:24:32.600Z".to_owned(),
        ]);
    }
    t
}

fn longest_line(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn no_line_is_longer_than_the_width() {
    for width in [80, 120] {
        for table in [agents_table(), processes_table()] {
            let text = table.render_within(Some(width));
            assert!(longest_line(&text) <= width, "width {width}:\n{text}");
            assert_eq!(text.lines().count(), 4, "every row is kept:\n{text}");
        }
    }
}

#[test]
fn unlimited_keeps_full_ids_and_every_column() {
    let text = agents_table().render_within(None);
    assert!(longest_line(&text) > 120, "{text}");
    assert!(
        text.contains(AGENT_IDS[0]) && text.contains(WORKER),
        "{text}"
    );
    assert!(text.lines().next().unwrap().ends_with("RESTARTS"), "{text}");
}

#[test]
fn ids_shorten_to_their_unique_tail_first() {
    let text = agents_table().render_within(Some(120));
    let header = text.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "AGENT_ID", "POOL", "NAME", "ROLE", "STATUS", "PROCESS", "RESTARTS"
        ],
        "120 columns keep every column once ids are short:\n{text}"
    );
    for id in AGENT_IDS {
        assert!(
            text.contains(&format!("…{}", &id[id.len() - 12..])),
            "{text}"
        );
    }
    assert!(!text.contains(AGENT_IDS[0]), "{text}");
}

#[test]
fn at_80_columns_agents_keep_their_role_and_drop_the_worker() {
    let text = agents_table().render_within(Some(80));
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["AGENT_ID", "POOL", "NAME", "ROLE", "STATUS"],
        "\n{text}"
    );
    assert!(text.contains("quarantined"), "status is never cut:\n{text}");
}

#[test]
fn processes_drop_the_heartbeat_first() {
    let text = processes_table().render_within(Some(80));
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert!(!header.contains(&"LAST_HEARTBEAT"), "\n{text}");
    assert!(
        header.contains(&"PID") && header.contains(&"AGENTS"),
        "\n{text}"
    );
}

#[test]
fn a_width_nothing_fits_in_still_bounds_every_line() {
    let text = agents_table().render_within(Some(20));
    assert!(longest_line(&text) <= 20, "{text}");
}

#[test]
fn cut_text_keeps_both_ends() {
    assert_eq!(cut("business_analyst-45669a0e", 20), "business_a…-45669a0e");
    assert_eq!(cut("business_analyst", 8), "busi…yst");
    assert_eq!(cut("short", 8), "short");
}

#[test]
fn columns_must_hold_a_positive_width() {
    assert_eq!(parse_columns("80"), Some(80));
    assert_eq!(parse_columns(" 120 "), Some(120));
    for bad in ["", "0", "-3", "wide"] {
        assert_eq!(parse_columns(bad), None, "{bad:?}");
    }
}
