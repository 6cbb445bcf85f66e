//! `BatchWriter`: the master's hot paths hand updates over without waiting for the database.
//!
//! A background task gathers them for `interval` (or until `max_batch` are queued) and writes
//! each batch with one [`Store::apply`] transaction. While the database is unavailable it keeps
//! the queue and retries with back-off; beyond `max_pending` queued updates the oldest are
//! dropped (memory stays bounded through a long outage). A batch the database rejects for
//! another reason is retried one update at a time, so one bad update cannot block the rest.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::error::StoreError;
use crate::{Store, Update};

/// Tuning of a [`BatchWriter`].
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// How long updates are gathered before a write.
    pub interval: Duration,
    /// Most updates per transaction; a full batch is written at once.
    pub max_batch: usize,
    /// Most updates queued while the database is down; older ones are dropped beyond it.
    pub max_pending: usize,
    /// First retry delay after a failed write; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

/// Most updates per transaction on SQLite. There a batch holds the store's only connection
/// (see [`crate::connect_sqlite`]) while it runs, and a spawn's insert queues behind it: the
/// few hundred updates of a busy 50 ms held it 4 to 8 ms, 32 hold it about one. Commits there
/// do not sync the file, so more of them cost little; PostgreSQL commits do, and keep the
/// larger batches.
pub const SQLITE_MAX_BATCH: usize = 32;

impl WriterConfig {
    /// The default tuning for the store's backend.
    pub fn for_store(store: &dyn Store) -> Self {
        match store.backend() {
            "sqlite" => Self {
                max_batch: SQLITE_MAX_BATCH,
                ..Self::default()
            },
            _ => Self::default(),
        }
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(50),
            max_batch: 500,
            max_pending: 100_000,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

enum Msg {
    Update(Update),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

#[derive(Default, Debug)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

/// Cheap, clonable handle to the writer task. Must be created inside a tokio runtime.
#[derive(Clone, Debug)]
pub struct BatchWriter {
    tx: mpsc::UnboundedSender<Msg>,
    counters: Arc<Counters>,
}

impl BatchWriter {
    /// Starts the writer task with the default tuning for the store's backend.
    pub fn spawn(store: Arc<dyn Store>) -> BatchWriter {
        let cfg = WriterConfig::for_store(&*store);
        Self::with_config(store, cfg)
    }

    pub fn with_config(store: Arc<dyn Store>, cfg: WriterConfig) -> BatchWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = Task {
            store,
            rx,
            cfg,
            pending: VecDeque::new(),
            waiters: Vec::new(),
            closers: Vec::new(),
            rx_closed: false,
            overflowing: false,
            counters: counters.clone(),
        };
        tokio::spawn(task.run());
        BatchWriter { tx, counters }
    }

    /// Queues an update; never blocks. After [`BatchWriter::close`] the update is discarded.
    pub fn send(&self, update: Update) {
        if self.tx.send(Msg::Update(update)).is_err() {
            tracing::warn!("store writer is closed; update discarded");
        }
    }

    /// Waits until every update sent before this call is written (or dropped as rejected or
    /// over the limit). While the database is down this waits for it: bound it with
    /// `tokio::time::timeout` where that matters.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes everything queued, then stops the task (for every clone). Like `flush`, it waits
    /// for the database; graceful shutdown should bound it with `tokio::time::timeout`.
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Updates written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Updates given up on: rejected by the database, or dropped over `max_pending`.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

struct Task {
    store: Arc<dyn Store>,
    rx: mpsc::UnboundedReceiver<Msg>,
    cfg: WriterConfig,
    pending: VecDeque<Update>,
    waiters: Vec<oneshot::Sender<()>>,
    closers: Vec<oneshot::Sender<()>>,
    /// Every handle is gone: write what is left, then stop.
    rx_closed: bool,
    /// Dropping over the limit; warned once per episode.
    overflowing: bool,
    counters: Arc<Counters>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff: Option<Duration> = None;
        loop {
            if self.pending.is_empty() {
                for waiter in self.waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if !self.closers.is_empty() || self.rx_closed {
                    for closer in self.closers.drain(..) {
                        let _ = closer.send(());
                    }
                    return;
                }
                match self.rx.recv().await {
                    Some(msg) => self.take(msg),
                    None => self.rx_closed = true,
                }
                continue;
            }
            self.gather(
                Instant::now() + backoff.unwrap_or(self.cfg.interval),
                backoff.is_some(),
            )
            .await;
            backoff = match self.write().await {
                Ok(()) => None,
                Err(e) => {
                    let next = backoff.map_or(self.cfg.min_backoff, |b| b * 2);
                    let next = next.min(self.cfg.max_backoff);
                    tracing::warn!(error = %e, pending = self.pending.len(), retry_in = ?next,
                        "store write failed; keeping the updates");
                    Some(next)
                }
            };
        }
    }

    /// Takes messages until `deadline`, or sooner when a write is due and not backing off.
    async fn gather(&mut self, deadline: Instant, backing_off: bool) {
        loop {
            let due = self.pending.len() >= self.cfg.max_batch
                || !self.waiters.is_empty()
                || !self.closers.is_empty()
                || self.rx_closed;
            if due && !backing_off {
                return;
            }
            if self.rx_closed {
                sleep_until(deadline).await;
                return;
            }
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.take(msg),
                    None => self.rx_closed = true,
                },
                () = sleep_until(deadline) => return,
            }
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Update(update) => {
                self.pending.push_back(update);
                if self.pending.len() > self.cfg.max_pending {
                    self.pending.pop_front();
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    if !self.overflowing {
                        self.overflowing = true;
                        tracing::warn!(
                            limit = self.cfg.max_pending,
                            "store writer queue full; dropping the oldest updates"
                        );
                    }
                }
            }
            Msg::Flush(done) => self.waiters.push(done),
            Msg::Close(done) => self.closers.push(done),
        }
    }

    /// Writes the queue in batches; stops at the first `Unavailable`, keeping what is left.
    async fn write(&mut self) -> Result<(), StoreError> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.cfg.max_batch);
            let batch = &self.pending.make_contiguous()[..n];
            match self.store.apply(batch).await {
                Ok(()) => {
                    self.pending.drain(..n);
                    self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.is_unavailable() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "store rejected a batch; writing it one by one");
                    self.write_one_by_one(n).await?;
                }
            }
            self.overflowing = false;
        }
        Ok(())
    }

    async fn write_one_by_one(&mut self, n: usize) -> Result<(), StoreError> {
        for _ in 0..n {
            let Some(update) = self.pending.front() else {
                break;
            };
            match self.store.apply(std::slice::from_ref(update)).await {
                Ok(()) => {
                    self.counters.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.is_unavailable() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, ?update, "store rejected an update; dropping it");
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.pending.pop_front();
        }
        Ok(())
    }
}
