//! `EventHub`: lets a request wait for "agent X runs" or "worker Y registered".
//!
//! Events from workers wake waiters at once. Pub/sub can drop events (during a reconnect, or
//! before a subscription is in place), so every wait also re-checks the registry on a short
//! period: an event only makes a wait faster, never correct.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often a waiter re-checks the registry when no event arrives.
const POLL_FALLBACK: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct EventHub {
    waiters: Mutex<HashMap<String, Vec<Arc<Notify>>>>,
}

impl EventHub {
    pub fn wake(&self, subject: &str) {
        let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for n in waiters.get(subject).into_iter().flatten() {
            // `notify_one` keeps a permit when nobody is parked yet: no lost wake-up.
            n.notify_one();
        }
    }

    /// Runs `check` until it yields `Some`, on every event about `subject` and at least every
    /// `POLL_FALLBACK`. `Ok(None)` when `timeout` passes first.
    pub async fn wait<T, E, F, Fut>(
        &self,
        subject: &str,
        timeout: Duration,
        check: F,
    ) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.wait_every(subject, timeout, POLL_FALLBACK, check)
            .await
    }

    /// [`EventHub::wait`] with its own poll period, for waits that events nearly always end.
    pub async fn wait_every<T, E, F, Fut>(
        &self,
        subject: &str,
        timeout: Duration,
        poll: Duration,
        mut check: F,
    ) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let notify = Arc::new(Notify::new());
        let _guard = self.register(subject, notify.clone());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await? {
                return Ok(Some(v));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let nap = poll.min(deadline - now);
            let _ = tokio::time::timeout(nap, notify.notified()).await;
        }
    }

    fn register(&self, subject: &str, notify: Arc<Notify>) -> Registration<'_> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters
            .entry(subject.to_owned())
            .or_default()
            .push(notify.clone());
        Registration {
            hub: self,
            subject: subject.to_owned(),
            notify,
        }
    }
}

/// Removes a waiter when its wait ends, however it ends.
struct Registration<'a> {
    hub: &'a EventHub,
    subject: String,
    notify: Arc<Notify>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiters = self.hub.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = waiters.get_mut(&self.subject) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                waiters.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn an_event_ends_the_wait_before_the_poll_period() {
        let hub = Arc::new(EventHub::default());
        let ready = Arc::new(AtomicBool::new(false));
        let (h, r) = (hub.clone(), ready.clone());
        let waiter = tokio::spawn(async move {
            let start = Instant::now();
            let got: Result<Option<()>, ()> = h
                .wait("a1", Duration::from_secs(5), || {
                    let ready = r.load(Ordering::SeqCst);
                    async move { Ok(ready.then_some(())) }
                })
                .await;
            (got, start.elapsed())
        });
        tokio::task::yield_now().await;
        ready.store(true, Ordering::SeqCst);
        hub.wake("a1");
        let (got, _elapsed) = waiter.await.unwrap();
        assert_eq!(got, Ok(Some(())));
        assert!(
            hub.waiters.lock().unwrap().is_empty(),
            "registration removed"
        );
    }

    #[tokio::test]
    async fn times_out_with_none() {
        let hub = EventHub::default();
        let got: Result<Option<()>, ()> = hub
            .wait("x", Duration::from_millis(30), || async { Ok(None) })
            .await;
        assert_eq!(got, Ok(None));
    }
}
