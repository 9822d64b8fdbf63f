//! The multi-tab lease (`sync::lease`) against a simulated browser: one Web Lock granted in
//! request order and handed on when its holder releases it or dies, and a BroadcastChannel
//! that delivers to every other live tab. Engines are recorded, and settle when told to.

use std::collections::VecDeque;

use mana_sync::protocol::ErrorBody;
use mana_sync::sync::lease::{EventKind, Lease, LeaseEffect, LeaseInput, Role, TabMessage};
use mana_sync::sync::{Input, SyncError, SyncStatus};

struct Tab {
    lease: Lease,
    alive: bool,
    /// Inputs its engine got.
    engine: Vec<Input>,
    /// `syncNow()` waiters the app saw settle.
    settled: Vec<(u64, Result<(), ErrorBody>)>,
    events: Vec<(EventKind, serde_json::Value)>,
}

#[derive(Default)]
struct Browser {
    tabs: Vec<Tab>,
    holder: Option<usize>,
    waiting: VecDeque<usize>,
    inbox: VecDeque<(usize, LeaseInput)>,
}

impl Browser {
    fn new(n: usize) -> Browser {
        let mut b = Browser::default();
        for _ in 0..n {
            b.open();
        }
        b
    }

    fn open(&mut self) -> usize {
        let id = self.tabs.len();
        self.tabs.push(Tab {
            lease: Lease::new(1000 + id as u64),
            alive: true,
            engine: Vec::new(),
            settled: Vec::new(),
            events: Vec::new(),
        });
        id
    }

    fn input(&mut self, tab: usize, input: LeaseInput) {
        self.inbox.push_back((tab, input));
        self.run();
    }

    /// Delivers inputs and runs effects until nothing moves.
    fn run(&mut self) {
        while let Some((tab, input)) = self.inbox.pop_front() {
            if !self.tabs[tab].alive {
                continue;
            }
            self.tabs[tab].lease.handle(input);
            while let Some(effect) = self.tabs[tab].lease.poll_effect() {
                self.effect(tab, effect);
            }
        }
    }

    fn effect(&mut self, tab: usize, effect: LeaseEffect) {
        match effect {
            LeaseEffect::RequestLock => {
                self.waiting.push_back(tab);
                self.grant();
            }
            LeaseEffect::ReleaseLock => self.release(tab),
            LeaseEffect::Post(m) => {
                for other in 0..self.tabs.len() {
                    if other != tab && self.tabs[other].alive {
                        self.inbox
                            .push_back((other, LeaseInput::Message(m.clone())));
                    }
                }
            }
            LeaseEffect::Engine(input) => self.tabs[tab].engine.push(input),
            LeaseEffect::Settle { waiter, result } => self.tabs[tab].settled.push((waiter, result)),
            LeaseEffect::Status(_) => {}
            LeaseEffect::Event { kind, value } => self.tabs[tab].events.push((kind, value)),
        }
    }

    fn release(&mut self, tab: usize) {
        if self.holder == Some(tab) {
            self.holder = None;
            self.grant();
        } else {
            self.waiting.retain(|&t| t != tab);
        }
    }

    fn grant(&mut self) {
        if self.holder.is_some() {
            return;
        }
        while let Some(next) = self.waiting.pop_front() {
            if self.tabs[next].alive {
                self.holder = Some(next);
                self.inbox.push_back((next, LeaseInput::LockGranted));
                return;
            }
        }
    }

    /// The tab closes or crashes: its lock goes to the next in line, its messages are lost.
    fn kill(&mut self, tab: usize) {
        self.tabs[tab].alive = false;
        self.release(tab);
        self.run();
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.tabs.len())
            .filter(|&t| self.tabs[t].alive && self.tabs[t].lease.role() == Role::Leader)
            .collect()
    }

    fn leader(&self) -> usize {
        let leaders = self.leaders();
        assert_eq!(leaders.len(), 1, "exactly one leader");
        leaders[0]
    }

    /// The waiters of `syncNow` its engine was given and has not settled yet.
    fn engine_waiters(&self, tab: usize) -> Vec<u64> {
        self.tabs[tab]
            .engine
            .iter()
            .filter_map(|i| match i {
                Input::SyncNow { waiter } => Some(*waiter),
                _ => None,
            })
            .collect()
    }

    /// The leader's engine finishes every round it was asked for.
    fn settle_all(&mut self, tab: usize, result: Result<(), SyncError>) {
        for waiter in std::mem::take(&mut self.tabs[tab].engine)
            .into_iter()
            .filter_map(|i| match i {
                Input::SyncNow { waiter } => Some(waiter),
                _ => None,
            })
        {
            self.inbox.push_back((
                tab,
                LeaseInput::EngineSettled {
                    waiter,
                    result: result.clone(),
                },
            ));
        }
        self.run();
    }

    fn start_all(&mut self) {
        for t in 0..self.tabs.len() {
            self.input(t, LeaseInput::Start);
        }
    }
}

#[test]
fn one_of_three_tabs_leads_and_only_it_runs_the_engine() {
    let mut b = Browser::new(3);
    b.start_all();
    let leader = b.leader();
    assert_eq!(leader, 0, "the first to ask gets the lock");
    for t in 0..3 {
        let started = b.tabs[t].engine.contains(&Input::Start);
        assert_eq!(started, t == leader, "tab {t}");
        if t != leader {
            assert_eq!(b.tabs[t].lease.role(), Role::Follower);
        }
    }
}

#[test]
fn a_followers_write_wakes_the_leaders_engine() {
    let mut b = Browser::new(2);
    b.start_all();
    b.tabs[0].engine.clear();
    b.input(1, LeaseInput::LocalWrite);
    assert_eq!(b.tabs[0].engine, vec![Input::LocalWrite]);
    assert!(b.tabs[1].engine.is_empty());
}

#[test]
fn a_followers_sync_now_settles_when_the_leader_has_synced() {
    let mut b = Browser::new(2);
    b.start_all();
    b.input(1, LeaseInput::SyncNow { waiter: 7 });
    assert_eq!(b.engine_waiters(0).len(), 1);
    assert!(
        b.tabs[1].settled.is_empty(),
        "not before the leader's round"
    );
    b.settle_all(0, Ok(()));
    assert_eq!(b.tabs[1].settled, vec![(7, Ok(()))]);
    assert!(
        b.tabs[0].settled.is_empty(),
        "the leader's app had no waiter"
    );
}

#[test]
fn a_failed_round_rejects_the_followers_sync_now_with_its_code() {
    let mut b = Browser::new(2);
    b.start_all();
    b.input(1, LeaseInput::SyncNow { waiter: 1 });
    b.settle_all(0, Err(SyncError::Network("down".into())));
    let (_, result) = &b.tabs[1].settled[0];
    assert_eq!(result.as_ref().unwrap_err().code, "network");
}

#[test]
fn when_the_leader_dies_the_next_tab_takes_over_and_answers_open_requests() {
    let mut b = Browser::new(3);
    b.start_all();
    b.input(2, LeaseInput::SyncNow { waiter: 5 });
    assert_eq!(b.engine_waiters(0).len(), 1, "the leader got it");
    b.kill(0); // mid-request: its answer never comes
    let next = b.leader();
    assert_eq!(next, 1);
    assert!(b.tabs[1].engine.contains(&Input::Start));
    assert_eq!(b.engine_waiters(1).len(), 1, "resent to the new leader");
    b.settle_all(1, Ok(()));
    assert_eq!(b.tabs[2].settled, vec![(5, Ok(()))]);
}

#[test]
fn a_follower_that_becomes_leader_runs_its_own_open_requests() {
    let mut b = Browser::new(2);
    b.start_all();
    b.input(1, LeaseInput::SyncNow { waiter: 3 });
    b.kill(0);
    assert_eq!(b.leader(), 1);
    assert_eq!(
        b.engine_waiters(1),
        vec![3],
        "its own waiter, not a served one"
    );
    b.settle_all(1, Ok(()));
    assert_eq!(b.tabs[1].settled, vec![(3, Ok(()))]);
}

#[test]
fn stop_in_the_leader_hands_the_lock_on() {
    let mut b = Browser::new(2);
    b.start_all();
    b.input(0, LeaseInput::Stop);
    assert!(b.tabs[0].engine.contains(&Input::Stop));
    assert_eq!(b.tabs[0].lease.role(), Role::Idle);
    assert_eq!(b.leader(), 1);
    // A stopped tab's syncNow still syncs once, on its own engine.
    b.input(0, LeaseInput::SyncNow { waiter: 9 });
    assert_eq!(b.engine_waiters(0), vec![9]);
}

#[test]
fn a_lock_granted_after_stop_is_released_at_once() {
    let mut b = Browser::new(2);
    b.start_all();
    b.input(1, LeaseInput::Stop);
    assert!(b.waiting.is_empty(), "gave up waiting");
    let mut lone = Lease::new(1);
    lone.handle(LeaseInput::Start);
    lone.handle(LeaseInput::Stop);
    while lone.poll_effect().is_some() {}
    lone.handle(LeaseInput::LockGranted);
    assert_eq!(lone.poll_effect(), Some(LeaseEffect::ReleaseLock));
    assert_eq!(lone.role(), Role::Idle);
}

#[test]
fn status_and_events_reach_every_follower_including_late_ones() {
    let mut b = Browser::new(2);
    b.start_all();
    b.input(0, LeaseInput::EngineStatus(SyncStatus::Synced));
    assert_eq!(b.tabs[1].lease.status(), SyncStatus::Synced);
    let late = b.open();
    b.input(late, LeaseInput::Start);
    assert_eq!(
        b.tabs[late].lease.status(),
        SyncStatus::Synced,
        "told on hello"
    );
    let value = serde_json::json!({"collection": "notes", "ids": ["a"]});
    b.input(
        0,
        LeaseInput::EngineEvent {
            kind: EventKind::Change,
            value: value.clone(),
        },
    );
    for t in 0..3 {
        assert_eq!(b.tabs[t].events, vec![(EventKind::Change, value.clone())]);
    }
}

#[test]
fn without_web_locks_every_tab_syncs_alone() {
    let mut lease = Lease::new(1);
    lease.handle(LeaseInput::Start);
    lease.handle(LeaseInput::SyncNow { waiter: 1 });
    lease.handle(LeaseInput::LocksUnavailable);
    let effects: Vec<_> = std::iter::from_fn(|| lease.poll_effect()).collect();
    assert_eq!(lease.role(), Role::Solo);
    assert!(effects.contains(&LeaseEffect::Engine(Input::Start)));
    assert!(effects.contains(&LeaseEffect::Engine(Input::SyncNow { waiter: 1 })));
    lease.handle(LeaseInput::LocalWrite);
    assert_eq!(
        lease.poll_effect(),
        Some(LeaseEffect::Engine(Input::LocalWrite))
    );
}

/// Seeded random opens, starts, stops, kills and `syncNow()`s; the live leader finishes its
/// rounds now and then. Invariants: never two leaders; once a leader exists and has finished,
/// every `syncNow()` of a live started tab has settled exactly once.
#[test]
fn random_tab_lives_never_make_two_leaders_or_lose_a_sync_now() {
    for seed in 0..300u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut b = Browser::new(3);
        let mut asked: Vec<(usize, u64)> = Vec::new();
        let mut waiter = 0;
        for _ in 0..60 {
            let live: Vec<usize> = (0..b.tabs.len()).filter(|&t| b.tabs[t].alive).collect();
            let tab = live[next(live.len() as u64) as usize];
            match next(7) {
                0 => {
                    let t = b.open();
                    b.input(t, LeaseInput::Start);
                }
                1 if live.len() > 1 => b.kill(tab),
                2 => b.input(tab, LeaseInput::Stop),
                3 | 4 => {
                    waiter += 1;
                    asked.push((tab, waiter));
                    b.input(tab, LeaseInput::SyncNow { waiter });
                }
                5 => {
                    if let Some(&l) = b.leaders().first() {
                        b.settle_all(l, Ok(()));
                    }
                }
                _ => b.input(tab, LeaseInput::Start),
            }
            assert!(b.leaders().len() <= 1, "seed {seed}: two leaders");
        }
        // Quiesce: every live tab starts (so a leader exists), then tabs finish their rounds.
        b.start_all();
        for _ in 0..3 {
            for t in 0..b.tabs.len() {
                if b.tabs[t].alive {
                    b.settle_all(t, Ok(()));
                }
            }
        }
        for (tab, w) in asked {
            if !b.tabs[tab].alive {
                continue;
            }
            let n = b.tabs[tab].settled.iter().filter(|(s, _)| *s == w).count();
            assert_eq!(n, 1, "seed {seed}: tab {tab} waiter {w} settled {n} times");
        }
    }
}

#[test]
fn tab_messages_round_trip_as_json_and_unknown_ones_are_refused() {
    let m = TabMessage::SyncDone {
        tab: 3,
        request: 4,
        error: Some(ErrorBody {
            code: "network".into(),
            message: "down".into(),
            index: None,
        }),
    };
    let text = serde_json::to_string(&m).unwrap();
    assert!(text.contains(r#""type":"sync-done""#), "{text}");
    assert_eq!(serde_json::from_str::<TabMessage>(&text).unwrap(), m);
    let status = serde_json::to_string(&TabMessage::Status {
        status: SyncStatus::AuthRequired,
    })
    .unwrap();
    assert_eq!(status, r#"{"type":"status","status":"auth-required"}"#);
    assert!(serde_json::from_str::<TabMessage>(r#"{"type":"elect-me"}"#).is_err());
}
