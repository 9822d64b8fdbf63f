//! A deterministic simulation of the sync engine against the real server (in the manner of
//! FoundationDB's simulator and TigerBeetle's VOPR): one seed decides everything — the
//! devices' writes, the network's losses, duplicates, delays and overload answers, the
//! restarts, the passing of (simulated) time — so a failing seed replays exactly.
//!
//! Each seed runs four phases:
//! 1. **chaos**: random operations on three devices of one user, with faults;
//! 2. **calm**: no more faults or writes; time passes and automatic sync must push
//!    everything pending;
//! 3. **settle**: every device `syncNow()`s, three rounds, each must succeed;
//! 4. a **late joiner** (a fresh fourth device) syncs from scratch;
//!
//! then the invariants of [`check`] are checked.

pub mod check;
pub mod device;
pub mod net;
pub mod rng;
pub mod server;
pub mod world;
pub mod writes;

use std::fmt;

use mana_sync::sync::SyncStatus;
use tokio::runtime::Runtime;

use net::Faults;
use world::World;

/// Devices of the chaos phase.
pub const DEVICES: usize = 3;
/// Random operations per seed (inclusive range).
pub const OPS: (u64, u64) = (40, 110);
/// How long the calm phase lets automatic sync work.
const CALM_MS: u64 = 5 * 60_000;
/// `syncNow()` rounds of the settle phase (every device, in turn).
const SETTLE_ROUNDS: usize = 2;

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    pub invariant: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Failure {
        Failure {
            invariant,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// What happened, summed over seeds (to see that the faults really occur).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub seeds: u64,
    pub writes: u64,
    pub changes: u64,
    pub secrets: u64,
    pub pushes: u64,
    pub pulls: u64,
    pub paged_pulls: u64,
    pub server_calls: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub synthetic: u64,
    pub timeouts: u64,
    pub bad_tokens: u64,
    pub local_failures: u64,
    pub offline_periods: u64,
    pub restarts: u64,
    pub restarts_push_in_flight: u64,
    pub restarts_push_applied: u64,
    pub restarts_mid_pull: u64,
    pub sim_ms: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        let pairs = [
            (&mut self.seeds, o.seeds),
            (&mut self.writes, o.writes),
            (&mut self.changes, o.changes),
            (&mut self.secrets, o.secrets),
            (&mut self.pushes, o.pushes),
            (&mut self.pulls, o.pulls),
            (&mut self.paged_pulls, o.paged_pulls),
            (&mut self.server_calls, o.server_calls),
            (&mut self.lost, o.lost),
            (&mut self.duplicates, o.duplicates),
            (&mut self.synthetic, o.synthetic),
            (&mut self.timeouts, o.timeouts),
            (&mut self.bad_tokens, o.bad_tokens),
            (&mut self.local_failures, o.local_failures),
            (&mut self.offline_periods, o.offline_periods),
            (&mut self.restarts, o.restarts),
            (&mut self.restarts_push_in_flight, o.restarts_push_in_flight),
            (&mut self.restarts_push_applied, o.restarts_push_applied),
            (&mut self.restarts_mid_pull, o.restarts_mid_pull),
            (&mut self.sim_ms, o.sim_ms),
        ];
        for (a, b) in pairs {
            *a += b;
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seeds: {} writes ({} changes), {} pushes, {} pulls ({} with more to come), \
             {} server calls; \
             lost {}, duplicated {}, synthetic answers {}, timeouts {}, bad tokens {}, \
             local store failures {}, offline periods {}; restarts {} (push in flight {}, push applied {}, mid-pull {}); \
             {:.1} h simulated",
            self.seeds,
            self.writes,
            self.changes,
            self.pushes,
            self.pulls,
            self.paged_pulls,
            self.server_calls,
            self.lost,
            self.duplicates,
            self.synthetic,
            self.timeouts,
            self.bad_tokens,
            self.local_failures,
            self.offline_periods,
            self.restarts,
            self.restarts_push_in_flight,
            self.restarts_push_applied,
            self.restarts_mid_pull,
            self.sim_ms as f64 / 3_600_000.0
        )
    }
}

/// How a seed runs (not what it does: that is the seed's).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep a line per event, to print.
    pub trace: bool,
    /// Writes of one seed carry different actors (the default in `sync_sim`). It found that
    /// first-sync snapshots gave every field the actor of the record's latest write; they now
    /// send one change per actor.
    pub mixed_actors: bool,
}

pub struct Outcome {
    pub stats: Stats,
    pub trace: Option<Vec<String>>,
    pub result: Result<(), Failure>,
}

/// Runs one seed on `rt` (whose blocking pool serves the server's SQLite calls).
pub fn run_seed(seed: u64, rt: &Runtime, opts: Options) -> Outcome {
    let mut w = World::new(seed, rt, DEVICES, opts);
    let result = phases(&mut w);
    w.stats.seeds = 1;
    w.stats.sim_ms = w.now;
    Outcome {
        stats: w.stats.clone(),
        trace: w.trace.take(),
        result,
    }
}

fn phases(w: &mut World) -> Result<(), Failure> {
    chaos(w)?;
    calm(w)?;
    settle(w)?;
    late_joiner(w)?;
    check::all(w)
}

fn chaos(w: &mut World) -> Result<(), Failure> {
    let ops = w.rng.range(OPS.0, OPS.1);
    // Devices boot at different times (writes before the first start stay pending).
    let boots: Vec<u64> = (0..DEVICES).map(|_| w.rng.below(ops / 3 + 1)).collect();
    for step in 0..ops {
        for (d, &at) in boots.iter().enumerate() {
            if at == step && !w.devices[d].started {
                w.boot(d);
            }
        }
        w.random_op()?;
    }
    Ok(())
}

/// No faults, no writes: automatic sync (debounced pushes, retries) must push everything
/// by itself, except on a device that stopped for `auth-required`.
fn calm(w: &mut World) -> Result<(), Failure> {
    w.faults = Faults::none();
    w.log(|| "calm".into());
    for d in 0..w.devices.len() {
        w.go_online(d);
    }
    w.run_until(w.now + CALM_MS)?;
    for (d, dev) in w.devices.iter().enumerate() {
        let halted = matches!(
            dev.status,
            SyncStatus::AuthRequired | SyncStatus::PaymentRequired
        );
        if !halted && !dev.store.pending.is_empty() {
            let rows: Vec<u64> = dev.store.pending.iter().map(|r| r.key).collect();
            let detail = format!(
                "d{d} (status {}) still has pending rows {rows:?} after {} s of calm",
                dev.status.as_str(),
                CALM_MS / 1000
            );
            return Err(Failure::new("automatic-sync-pushes-everything", detail));
        }
        if !dev.waiters.is_empty() {
            let detail = format!("d{d}: syncNow waiters {:?} never settled", dev.waiters);
            return Err(Failure::new("each-syncnow-settles-once", detail));
        }
    }
    Ok(())
}

fn settle(w: &mut World) -> Result<(), Failure> {
    w.log(|| "settle".into());
    for _ in 0..SETTLE_ROUNDS {
        for d in 0..DEVICES {
            let waiter = w.sync_now(d);
            await_settled(w, d, waiter)?;
        }
    }
    Ok(())
}

/// A fresh device of the same user syncs from scratch (a paginated first-sync snapshot).
fn late_joiner(w: &mut World) -> Result<(), Failure> {
    let d = w.add_device();
    w.boot(d);
    let waiter = w.sync_now(d);
    await_settled(w, d, waiter)
}

fn await_settled(w: &mut World, d: usize, waiter: u64) -> Result<(), Failure> {
    for _ in 0..600 {
        w.run_until(w.now + 1_000)?;
        if let Some(result) = w.devices[d].settled.get(&waiter) {
            return result.clone().map_err(|e| {
                Failure::new(
                    "quiet-sync-succeeds",
                    format!("d{d} syncNow w{waiter}: {e}"),
                )
            });
        }
    }
    Err(Failure::new(
        "quiet-sync-settles",
        format!("d{d} syncNow w{waiter} not settled after 10 simulated minutes"),
    ))
}
