//! Polling helpers: tests wait for a condition, never for a fixed time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// First poll interval: short, so fast conditions cost almost nothing.
const FIRST_INTERVAL: Duration = Duration::from_millis(5);
/// Interval ceiling: slow conditions are still noticed promptly without busy-looping.
const MAX_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `f` until it yields `Some(value)` and returns the value.
///
/// The interval starts at ~5 ms and doubles up to ~100 ms. Panics if `timeout` passes first,
/// naming `what` so the failing expectation is obvious in the test output.
/// The condition is always evaluated at least once, and once more at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = FIRST_INTERVAL;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        // Never sleep past the deadline: the last check happens right at it.
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(MAX_INTERVAL);
    }
}

/// [`wait_for`] for boolean conditions.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_value_once_condition_holds() {
        let calls = Arc::new(AtomicU32::new(0));
        let got = wait_for("third call", Duration::from_secs(5), || {
            let calls = calls.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                (n >= 3).then_some(n)
            }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn wait_until_returns_when_true() {
        let calls = Arc::new(AtomicU32::new(0));
        wait_until("second call", Duration::from_secs(5), || {
            let calls = calls.clone();
            async move { calls.fetch_add(1, Ordering::SeqCst) >= 1 }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for the impossible")]
    async fn panics_on_timeout_naming_what() {
        wait_for("the impossible", Duration::from_millis(50), || async {
            None::<()>
        })
        .await;
    }
}
