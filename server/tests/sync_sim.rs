//! Seeded simulation of the client sync engine against the real server (see `sim/mod.rs`).
//!
//! - `cargo test -p mana-sync-server --test sync_sim`: seeds 0..1000;
//! - `SIM_SEEDS=<n>`: seeds 0..n;
//! - `SIM_SEED=<n>`: that seed alone, printing its full trace (the same on every run);
//! - `SIM_MIXED_ACTORS=0`: every write of a seed carries one actor (by default they differ;
//!   see `sim::Options`).

mod sim;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use sim::{Failure, Options, Stats};
use tokio::runtime::Runtime;

const DEFAULT_SEEDS: u64 = 1000;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One seed, a panic included as a failure.
fn run(
    seed: u64,
    rt: &Runtime,
    opts: Options,
) -> (Stats, Option<Vec<String>>, Result<(), Failure>) {
    match catch_unwind(AssertUnwindSafe(|| sim::run_seed(seed, rt, opts))) {
        Ok(o) => (o.stats, o.trace, o.result),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (Stats::default(), None, Err(Failure::new("no-panic", msg)))
        }
    }
}

fn report(seed: u64, failure: &Failure) {
    println!("sync_sim: seed {seed} failed: {failure}");
    println!(
        "  replay: SIM_SEED={seed} cargo test -p mana-sync-server --test sync_sim -- --nocapture"
    );
}

#[test]
fn sync_engine_simulation() {
    let mixed_actors = env_u64("SIM_MIXED_ACTORS").is_none_or(|v| v != 0);
    if let Some(seed) = env_u64("SIM_SEED") {
        let opts = Options {
            trace: true,
            mixed_actors,
        };
        let (stats, trace, result) = run(seed, &runtime(), opts);
        for line in trace.unwrap_or_default() {
            println!("{line}");
        }
        println!("sync_sim: {stats}");
        if let Err(failure) = result {
            report(seed, &failure);
            panic!("sync_sim: seed {seed} failed");
        }
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let total = Mutex::new(Stats::default());
    let failures: Mutex<Vec<(u64, Failure)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let rt = runtime();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if seed >= seeds {
                        break;
                    }
                    let opts = Options {
                        trace: false,
                        mixed_actors,
                    };
                    let (stats, _, result) = run(seed, &rt, opts);
                    total.lock().unwrap().add(&stats);
                    if let Err(f) = result {
                        failures.lock().unwrap().push((seed, f));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(seed, _)| *seed);
    for (seed, f) in &failures {
        report(*seed, f);
    }
    let total = total.into_inner().unwrap();
    println!(
        "sync_sim: {total}; {:.1} s on {workers} threads",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "sync_sim: {} of {seeds} seeds failed (first: {})",
        failures.len(),
        failures[0].0
    );
}
