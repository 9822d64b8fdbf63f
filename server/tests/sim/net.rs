//! Everything that happens later: messages on the network between a device and the server,
//! request timeouts, and the device's IndexedDB transactions (a read of the pending queue,
//! an apply) that complete a little after they were asked for.

use std::collections::BTreeMap;

use mana_sync::sync::answer::HttpAnswer;
use mana_sync::sync::{Apply, HttpRequest, Millis};

use super::rng::Rng;

/// A fetch that got no answer for this long fails with a timeout.
pub const REQUEST_TIMEOUT: Millis = 10_000;

#[derive(Debug)]
pub enum Event {
    /// A request reaches the server; `reply` = its answer travels back.
    Server {
        dev: usize,
        gen: u32,
        req: HttpRequest,
        reply: bool,
    },
    /// An answer (real or synthetic) reaches the device.
    Answer {
        dev: usize,
        gen: u32,
        id: u64,
        answer: HttpAnswer,
    },
    Timeout {
        dev: usize,
        gen: u32,
        id: u64,
    },
    /// A local IndexedDB transaction completes.
    Task {
        dev: usize,
        gen: u32,
        task: Task,
    },
    /// The page reloads (aimed at a moment: a push applied but not answered, a pull
    /// between two pages).
    Crash {
        dev: usize,
        gen: u32,
    },
    /// The browser is back online.
    Online {
        dev: usize,
    },
}

#[derive(Debug)]
pub enum Task {
    ReadPending,
    Apply(Apply),
}

impl Event {
    pub fn device(&self) -> usize {
        match self {
            Event::Server { dev, .. }
            | Event::Answer { dev, .. }
            | Event::Timeout { dev, .. }
            | Event::Task { dev, .. }
            | Event::Crash { dev, .. }
            | Event::Online { dev } => *dev,
        }
    }
}

/// Events by (time, insertion order): deterministic ties.
#[derive(Default)]
pub struct Queue {
    events: BTreeMap<(Millis, u64), Event>,
    seq: u64,
}

impl Queue {
    pub fn push(&mut self, at: Millis, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    pub fn next_at(&self) -> Option<Millis> {
        self.events.keys().next().map(|k| k.0)
    }

    pub fn pop(&mut self) -> Option<Event> {
        self.events.pop_first().map(|(_, e)| e)
    }

    /// Removes and returns the events of one device, in order, with their times.
    pub fn take_device(&mut self, dev: usize) -> Vec<(Millis, Event)> {
        let keys: Vec<(Millis, u64)> = self
            .events
            .iter()
            .filter(|(_, e)| e.device() == dev)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.events.remove(&k).map(|e| (k.0, e)))
            .collect()
    }
}

/// How hostile the network and the store are.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub lose_request: f64,
    pub lose_answer: f64,
    /// A request reaches the server a second time, later.
    pub duplicate: f64,
    /// An answer takes seconds (often beyond the request timeout).
    pub slow: f64,
    /// A 503 / 429 / 413 answer instead of the server's.
    pub synthetic: f64,
    /// `token()` gives a token the server refuses.
    pub bad_token: f64,
    /// A read of the pending queue or an apply transaction fails: nothing is written.
    pub apply_fails: f64,
    /// The device reloads right after the server applied its push, or between two pages.
    pub crash: f64,
    /// A device goes offline for a while (per chance of an offline operation).
    pub offline: f64,
}

impl Faults {
    pub fn chaos(rng: &mut Rng) -> Faults {
        // Each seed draws its own weather, from calm to stormy.
        let storm = rng.range(0, 100) as f64 / 100.0;
        Faults {
            lose_request: 0.08 * storm,
            lose_answer: 0.08 * storm,
            duplicate: 0.12 * storm,
            slow: 0.06 * storm,
            synthetic: 0.15 * storm,
            bad_token: 0.08 * storm,
            apply_fails: 0.05 * storm,
            crash: 0.15 * storm,
            offline: storm,
        }
    }

    pub fn none() -> Faults {
        Faults {
            lose_request: 0.0,
            lose_answer: 0.0,
            duplicate: 0.0,
            slow: 0.0,
            synthetic: 0.0,
            bad_token: 0.0,
            apply_fails: 0.0,
            crash: 0.0,
            offline: 0.0,
        }
    }

    /// One way's latency.
    pub fn latency(&self, rng: &mut Rng) -> Millis {
        if rng.chance(self.slow) {
            rng.range(2_000, 15_000)
        } else {
            rng.range(1, 250)
        }
    }
}
