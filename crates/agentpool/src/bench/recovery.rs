//! `agentpool bench recovery`: how fast the agents of a killed or frozen worker run again.
//!
//! It sends signals to worker pids read from the API, so the master must run on this machine.
//! Before each signal it checks, in `/proc`, that the pid is a child of the master whose pid
//! `/health` gives; a remote master is refused instead of hitting an unrelated local process.

use super::ops;
use super::report::Report;
use super::stats::{Summary, ms};
use crate::cli::{DEFAULT_URL, client::Client};
use agentpool_master::config::DEFAULT_HEARTBEAT_TIMEOUT;
use agentpool_types::{Agent, AgentId, AgentState, ProcessId, ProcessState, WorkerProcess};
use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Url;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Agents on the signalled worker: a full worker of the bench pool.
const AGENTS_PER_RUN: u64 = 10;
/// Bulk spawns of [`AGENTS_PER_RUN`] tried per run before giving up on finding a worker that
/// holds only the bench's agents (packing first fills workers that other agents share).
const MAX_BATCHES: u32 = 5;
/// Pause between two polls of the agent list while timing a recovery.
const POLL: Duration = Duration::from_millis(2);
/// A recovery slower than this is reported as not recovered.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a resumed worker gets to notice it was replaced and exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two looks at `/proc` while waiting for that exit.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// Design target for the agents of a SIGKILLed worker to run elsewhere.
const KILL_TARGET_MS: f64 = 250.0;
/// A frozen worker is noticed after the heartbeat timeout; its agents get this much more.
const STOP_MARGIN: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct RecoveryArgs {
    /// Base URL of the master; it must run on this machine, since the bench signals its workers.
    #[arg(long, env = "AGENTPOOL_URL", default_value = DEFAULT_URL)]
    url: String,
    /// Pool to spawn into; use a dedicated one, since the bench kills its workers.
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Runs that SIGKILL a full worker; 0 skips them.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Runs that SIGSTOP a full worker, each lasting about the heartbeat timeout; 0 skips them.
    #[arg(long, default_value_t = 2)]
    stop_runs: u32,
    /// The master's `heartbeat_timeout_ms`; the SIGSTOP target is this plus 1 s.
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_TIMEOUT.as_millis() as u64)]
    heartbeat_timeout_ms: u64,
}

pub async fn run(args: RecoveryArgs) -> Result<()> {
    let api = Client::new(&args.url)?;
    let master_pid = master_pid(&args.url).await?;
    let mut bench = Bench {
        api,
        pool: args.pool.clone(),
        master_pid,
        ours: HashSet::new(),
        fresh: HashSet::new(),
        spawned: 0,
        signalled: HashSet::new(),
    };
    let mut report = Report::default();
    // Ctrl-C drops the phases, so a frozen worker gets its SIGCONT and the agents are cleaned up.
    let outcome = tokio::select! {
        r = phases(&mut bench, &args, &mut report) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let left: Vec<AgentId> = bench.ours.iter().cloned().collect();
    eprintln!("cleaning up {} agents", left.len());
    let cleanup = ops::terminate_all(&bench.api, &left).await;
    outcome?;
    cleanup?;
    report.info(
        "agents spawned",
        format!("{}, all terminated", bench.spawned),
    );
    report.print();
    Ok(())
}

async fn phases(bench: &mut Bench, args: &RecoveryArgs, report: &mut Report) -> Result<()> {
    if args.runs > 0 {
        kill_runs(bench, args.runs, report)
            .await
            .context("SIGKILL runs")?;
    }
    if args.stop_runs > 0 {
        let target = Duration::from_millis(args.heartbeat_timeout_ms) + STOP_MARGIN;
        stop_runs(bench, args.stop_runs, target, report)
            .await
            .context("SIGSTOP runs")?;
    }
    Ok(())
}

/// SIGKILL a full worker: the master sees its child exit and places the agents again.
async fn kill_runs(bench: &mut Bench, runs: u32, report: &mut Report) -> Result<()> {
    eprintln!("SIGKILL: {runs} runs, {AGENTS_PER_RUN} agents each");
    let mut tally = Tally::default();
    for run in 1..=runs {
        let victim = bench.prepare().await?;
        let start = Instant::now();
        victim.signal(Signal::SIGKILL)?;
        let outcome = bench.wait_moved(&victim, start).await?;
        eprintln!("SIGKILL run {run}/{runs}: pid {}: {outcome}", victim.pid);
        tally.add(outcome);
        bench.retire(&victim).await?;
    }
    match Summary::of(tally.times.clone()) {
        Some(s) => {
            report.target("SIGKILL recovery p50", ms(s.p50), KILL_TARGET_MS, "ms");
            report.target("SIGKILL recovery max", ms(s.max), KILL_TARGET_MS, "ms");
        }
        None => report.info("SIGKILL recovery", tally.none_recovered()),
    }
    report.info("SIGKILL runs recovered", tally.runs(runs));
    Ok(())
}

/// SIGSTOP a full worker: it stays registered but its heartbeat stops, so the master must
/// notice the stale heartbeat. Once resumed, the worker should find itself replaced and exit.
async fn stop_runs(
    bench: &mut Bench,
    runs: u32,
    target: Duration,
    report: &mut Report,
) -> Result<()> {
    eprintln!(
        "SIGSTOP: {runs} runs, {AGENTS_PER_RUN} agents each, target {:.1} s",
        target.as_secs_f64()
    );
    let mut tally = Tally::default();
    let (mut fenced, mut fence_times) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let victim = bench.prepare().await?;
        let start = Instant::now();
        let frozen = Frozen::stop(&victim)?;
        let outcome = bench.wait_moved(&victim, start).await;
        let gone_before = victim.exited()?;
        frozen.resume()?;
        let outcome = outcome?;
        let fence = if gone_before {
            Fence::GoneBeforeResume
        } else {
            victim.wait_exit().await?
        };
        eprintln!(
            "SIGSTOP run {run}/{runs}: pid {}: {outcome}; after SIGCONT: {fence}",
            victim.pid
        );
        if let Fence::Exited(took) = fence {
            fence_times.push(took);
        }
        fenced.push(fence);
        tally.add(outcome);
        bench.retire(&victim).await?;
    }
    let target_s = target.as_secs_f64();
    match Summary::of(tally.times.clone()) {
        Some(s) => {
            report.target("SIGSTOP recovery p50", s.p50.as_secs_f64(), target_s, "s");
            report.target("SIGSTOP recovery max", s.max.as_secs_f64(), target_s, "s");
        }
        None => report.info("SIGSTOP recovery", tally.none_recovered()),
    }
    report.info("SIGSTOP runs recovered", tally.runs(runs));
    report.info(
        "stopped worker exited",
        fence_summary(&fenced, &fence_times),
    );
    Ok(())
}

/// What the bench spawned and signalled.
struct Bench {
    api: Client,
    pool: String,
    master_pid: u32,
    /// The bench's agents still running; all are terminated at the end.
    ours: HashSet<AgentId>,
    /// Spawned agents no run has used yet. Each run takes fresh ones: an agent moved before
    /// carries a restart count, and the master delays its next restart (then quarantines it),
    /// which would time the restart backoff instead of the recovery.
    fresh: HashSet<AgentId>,
    /// Agents spawned in all.
    spawned: usize,
    /// Workers already signalled, never picked again (a frozen one may still look full).
    signalled: HashSet<ProcessId>,
}

impl Bench {
    /// A running worker holding [`AGENTS_PER_RUN`] idle agents, all fresh ones of the bench,
    /// spawning more agents until one exists. The worker is marked as signalled.
    async fn prepare(&mut self) -> Result<Victim> {
        for batch in 0..=MAX_BATCHES {
            if let Some(victim) = self.find_victim().await? {
                self.signalled.insert(victim.process_id.clone());
                return Ok(victim);
            }
            if batch == MAX_BATCHES {
                break;
            }
            let agents = ops::spawn_many(&self.api, &self.pool, AGENTS_PER_RUN).await?;
            let ids: Vec<AgentId> = agents.into_iter().map(|a| a.agent_id).collect();
            self.spawned += ids.len();
            self.ours.extend(ids.iter().cloned());
            self.fresh.extend(ids);
        }
        bail!(
            "after {MAX_BATCHES} spawns of {AGENTS_PER_RUN}, no worker of pool {} holds \
             {AGENTS_PER_RUN} fresh agents of the bench alone (is its max_agents_per_process 10?)",
            self.pool
        )
    }

    async fn find_victim(&self) -> Result<Option<Victim>> {
        let query = [("pool", self.pool.as_str())];
        let processes: Vec<WorkerProcess> = self.api.get(&["processes"], &query).await?;
        let agents = self.agents().await?;
        let candidates = processes.iter().filter(|p| {
            p.status == ProcessState::Running
                && u64::from(p.agent_count) == AGENTS_PER_RUN
                && !self.signalled.contains(&p.process_id)
        });
        for p in candidates {
            let hosted: Vec<&Agent> = agents
                .iter()
                .filter(|a| a.process_id.as_ref() == Some(&p.process_id))
                .collect();
            let all_ours = hosted
                .iter()
                .all(|a| self.fresh.contains(&a.agent_id) && a.status == AgentState::Idle);
            if hosted.len() as u64 == AGENTS_PER_RUN && all_ours {
                let victim = Victim::check(p, self.master_pid)?;
                let agents = hosted.iter().map(|a| a.agent_id.clone()).collect();
                return Ok(Some(Victim { agents, ..victim }));
            }
        }
        Ok(None)
    }

    /// Terminates a finished run's agents, so the pool does not grow from run to run.
    async fn retire(&mut self, victim: &Victim) -> Result<()> {
        let ids: Vec<AgentId> = victim.agents.iter().cloned().collect();
        for id in &ids {
            self.fresh.remove(id);
        }
        ops::terminate_all(&self.api, &ids).await?;
        for id in &ids {
            self.ours.remove(id);
        }
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<Agent>> {
        self.api
            .get(&["agents"], &[("pool", self.pool.as_str())])
            .await
    }

    /// Polls the pool's agents until all of the victim's run in another worker.
    async fn wait_moved(&self, victim: &Victim, start: Instant) -> Result<Outcome> {
        loop {
            let agents = self.agents().await?;
            let seen = start.elapsed();
            let mut moved = 0;
            for a in agents
                .iter()
                .filter(|a| victim.agents.contains(&a.agent_id))
            {
                if a.status.is_terminal() {
                    return Ok(Outcome::Lost(a.agent_id.clone(), a.status));
                }
                let elsewhere = a
                    .process_id
                    .as_ref()
                    .is_some_and(|p| *p != victim.process_id);
                if a.status.is_running() && elsewhere {
                    moved += 1;
                }
            }
            if moved == victim.agents.len() {
                return Ok(Outcome::Moved(seen));
            }
            if seen >= RECOVERY_DEADLINE {
                return Ok(Outcome::TimedOut);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The worker a run signals.
struct Victim {
    process_id: ProcessId,
    pid: Pid,
    /// From `/proc/<pid>/stat`: tells a reused pid from the worker.
    start_time: u64,
    agents: HashSet<AgentId>,
}

impl Victim {
    /// Refuses a pid that is not a live child of the master on this machine.
    fn check(p: &WorkerProcess, master_pid: u32) -> Result<Self> {
        let raw = i32::try_from(p.pid)
            .ok()
            .filter(|&pid| pid > 1)
            .with_context(|| format!("worker {} reports pid {}", p.process_id, p.pid))?;
        let stat = proc_stat(p.pid)?
            .with_context(|| format!("worker pid {} is not running on this machine", p.pid))?;
        if stat.ppid != master_pid {
            bail!(
                "pid {} (worker {}) is not a child of the master (pid {master_pid}) on this \
                 machine: run the bench on the master's host",
                p.pid,
                p.process_id
            );
        }
        Ok(Self {
            process_id: p.process_id.clone(),
            pid: Pid::from_raw(raw),
            start_time: stat.start_time,
            agents: HashSet::new(),
        })
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        kill(self.pid, sig).with_context(|| format!("sending {sig} to worker pid {}", self.pid))
    }

    /// The worker is gone: no `/proc` entry, a zombie, or the pid now names another process.
    fn exited(&self) -> Result<bool> {
        let pid = self.pid.as_raw().unsigned_abs();
        Ok(proc_stat(pid)?.is_none_or(|s| s.state == 'Z' || s.start_time != self.start_time))
    }

    async fn wait_exit(&self) -> Result<Fence> {
        let start = Instant::now();
        loop {
            if self.exited()? {
                return Ok(Fence::Exited(start.elapsed()));
            }
            if start.elapsed() >= EXIT_DEADLINE {
                return Ok(Fence::StillRunning);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

/// A SIGSTOPped worker; dropping it without [`Frozen::resume`] still sends SIGCONT, so an
/// error or Ctrl-C never leaves the worker frozen.
struct Frozen {
    pid: Option<Pid>,
}

impl Frozen {
    fn stop(victim: &Victim) -> Result<Self> {
        victim.signal(Signal::SIGSTOP)?;
        Ok(Self {
            pid: Some(victim.pid),
        })
    }

    /// Sends SIGCONT; a worker already gone (the master may have killed it) is fine.
    fn resume(mut self) -> Result<()> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        match kill(pid, Signal::SIGCONT) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("sending SIGCONT to worker pid {pid}")),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
}

/// How one run ended.
enum Outcome {
    /// All agents ran in another worker after this long.
    Moved(Duration),
    TimedOut,
    /// An agent reached a state it does not leave by itself.
    Lost(AgentId, AgentState),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Moved(d) => write!(f, "agents running elsewhere after {:.1} ms", ms(*d)),
            Outcome::TimedOut => f.write_str(NOT_RECOVERED),
            Outcome::Lost(id, state) => write!(f, "agent {id} ended {state}"),
        }
    }
}

const NOT_RECOVERED: &str = "not recovered within 30 s";

#[derive(Default)]
struct Tally {
    times: Vec<Duration>,
    timed_out: u32,
    lost: u32,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Moved(d) => self.times.push(d),
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Lost(..) => self.lost += 1,
        }
    }

    /// `4/5`, with why the others did not recover.
    fn runs(&self, runs: u32) -> String {
        let mut out = format!("{}/{runs}", self.times.len());
        let mut why = Vec::new();
        if self.timed_out > 0 {
            why.push(format!("{} {NOT_RECOVERED}", self.timed_out));
        }
        if self.lost > 0 {
            why.push(format!("{} lost an agent", self.lost));
        }
        if !why.is_empty() {
            out.push_str(&format!(" ({})", why.join(", ")));
        }
        out
    }

    fn none_recovered(&self) -> String {
        if self.lost == 0 {
            NOT_RECOVERED.to_owned()
        } else {
            "no run recovered".to_owned()
        }
    }
}

/// What the frozen worker did once resumed.
enum Fence {
    /// Gone before SIGCONT: something else (the master) ended it.
    GoneBeforeResume,
    /// It exited by itself this long after SIGCONT.
    Exited(Duration),
    StillRunning,
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fence::GoneBeforeResume => f.write_str("already gone before SIGCONT"),
            Fence::Exited(d) => write!(f, "exited by itself after {:.1} ms", ms(*d)),
            Fence::StillRunning => write!(f, "still running after {} s", EXIT_DEADLINE.as_secs()),
        }
    }
}

/// `2/2 by itself (max 12.3 ms after SIGCONT)`, naming the runs where it did not.
fn fence_summary(fenced: &[Fence], exit_times: &[Duration]) -> String {
    let mut out = format!("{}/{} by itself", exit_times.len(), fenced.len());
    if let Some(max) = exit_times.iter().max() {
        out.push_str(&format!(" (max {:.1} ms after SIGCONT)", ms(*max)));
    }
    let count = |pred: fn(&Fence) -> bool| fenced.iter().filter(|f| pred(f)).count();
    let gone = count(|f| matches!(f, Fence::GoneBeforeResume));
    let running = count(|f| matches!(f, Fence::StillRunning));
    if gone > 0 {
        out.push_str(&format!(", {gone} gone before SIGCONT"));
    }
    if running > 0 {
        out.push_str(&format!(
            ", {running} still running after {} s",
            EXIT_DEADLINE.as_secs()
        ));
    }
    out
}

/// The fields of `/proc/<pid>/stat` the bench needs.
#[derive(Debug, PartialEq)]
struct ProcStat {
    state: char,
    ppid: u32,
    start_time: u64,
}

/// `None` when the process does not exist (any more).
fn proc_stat(pid: u32) -> Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(&text)
            .map(Some)
            .with_context(|| format!("unexpected content in {path}: {text:?}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // Reading the file of a process that exits meanwhile fails with ESRCH.
        Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// `pid (comm) state ppid … starttime …`; comm may hold spaces and parentheses, so the fields
/// are counted from the last `)`: state is field 3, ppid field 4, starttime field 22.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The master's pid, from `GET /health` (outside `/api/v1`).
async fn master_pid(base: &str) -> Result<u32> {
    let mut url = Url::parse(base).with_context(|| format!("invalid master URL {base:?}"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow!("invalid master URL {base:?}"))?
        .pop_if_empty()
        .push("health");
    let response = reqwest::get(url.clone())
        .await
        .with_context(|| format!("could not reach {url} (is `agentpool serve` running there?)"))?;
    // A degraded master (503) still names its pid.
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("decoding the response of GET {url}"))?;
    body["master"]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .with_context(|| format!("GET {url} names no master pid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let text = "4723 (agent (pool) x) S 4652 4723 4723 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 \
                    3 0 987654 12345 1 18446744073709551615";
        let want = ProcStat {
            state: 'S',
            ppid: 4652,
            start_time: 987_654,
        };
        assert_eq!(parse_stat(text), Some(want));
        assert_eq!(parse_stat("4723 (x) Z 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let stat = proc_stat(std::process::id()).unwrap().unwrap();
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw().unsigned_abs());
        assert!(proc_stat(u32::MAX).unwrap().is_none());
    }

    #[test]
    fn run_counts_say_why() {
        let mut t = Tally::default();
        t.add(Outcome::Moved(Duration::from_millis(3)));
        t.add(Outcome::TimedOut);
        assert_eq!(t.runs(2), "1/2 (1 not recovered within 30 s)");
        let fenced = [Fence::Exited(Duration::from_millis(5)), Fence::StillRunning];
        assert_eq!(
            fence_summary(&fenced, &[Duration::from_millis(5)]),
            "1/2 by itself (max 5.0 ms after SIGCONT), 1 still running after 10 s"
        );
    }
}
