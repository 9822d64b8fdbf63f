//! Many tabs, one sync: which tab of a store runs the engine, and how the others reach it.
//!
//! Each tab that called `start()` asks for one Web Lock per database; the browser grants it to
//! one tab at a time and hands it on when that tab closes, crashes or is discarded. The holder
//! (the *leader*) runs the engine; the others (*followers*) post their writes and `syncNow()`
//! calls to it over a `BroadcastChannel` and show the status and events it posts back. Without
//! Web Locks every tab runs its own engine (*solo*): pushes are idempotent, so that is safe.
//!
//! [`Lease`] is sans-IO like the engine: [`LeaseInput`]s in, [`LeaseEffect`]s out. It needs
//! no timer: a new leader announces itself, and followers resend what it has not answered.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Input, SyncError, SyncStatus};
use crate::protocol::ErrorBody;

/// Engine waiters of requests served for other tabs carry this bit, so they never collide with
/// this tab's own waiters.
const SERVED: u64 = 1 << 63;

/// What a tab does in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not started (or stopped): a `syncNow()` runs this tab's own engine once.
    Idle,
    /// Waiting for the lock; another tab (if any) leads.
    Follower,
    /// Holds the lock and runs the engine for every tab.
    Leader,
    /// No Web Locks here: runs its own engine, like every other tab.
    Solo,
}

/// The event `sync.on(STATUS_EVENT, …)` reports each new status with (the others are
/// [`EventKind`]s).
pub const STATUS_EVENT: &str = "status";

/// An engine event the app subscribes to with `sync.on(kind, …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Conflict,
    Change,
}

impl EventKind {
    pub const ALL: [EventKind; 2] = [EventKind::Conflict, EventKind::Change];

    /// The event named `name` in `sync.on(name, …)`, if it is one of these.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event's name in `sync.on(name, …)`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Conflict => "conflict",
            EventKind::Change => "change",
        }
    }
}

/// A message between the tabs of one store. `tab` is the sender's (or addressee's) random id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TabMessage {
    /// The sender became the leader: followers resend their unanswered `syncNow()`s.
    Leader {
        tab: u64,
    },
    /// A follower joined: the leader answers with its status.
    Hello,
    /// A follower committed a write: the leader pushes it.
    Wrote,
    /// A follower's `syncNow()`, answered by `SyncDone` with the same `tab` and `request`.
    SyncNow {
        tab: u64,
        request: u64,
    },
    SyncDone {
        tab: u64,
        request: u64,
        error: Option<ErrorBody>,
    },
    Status {
        status: SyncStatus,
    },
    Event {
        kind: EventKind,
        value: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum LeaseInput {
    /// The app called `start()`.
    Start,
    /// The app called `stop()`.
    Stop,
    LockGranted,
    /// This browser has no Web Locks.
    LocksUnavailable,
    /// The app called `syncNow()`; settled by [`LeaseEffect::Settle`] with this `waiter`.
    SyncNow {
        waiter: u64,
    },
    /// This tab committed a write that queued pending changes.
    LocalWrite,
    Message(TabMessage),
    /// What this tab's engine reported.
    EngineStatus(SyncStatus),
    EngineSettled {
        waiter: u64,
        result: Result<(), SyncError>,
    },
    EngineEvent {
        kind: EventKind,
        value: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum LeaseEffect {
    RequestLock,
    /// Release the lock, or give up waiting for it.
    ReleaseLock,
    Post(TabMessage),
    /// Feed this tab's engine (created on first use).
    Engine(Input),
    /// Settle the app's `syncNow()` promise `waiter`.
    Settle {
        waiter: u64,
        result: Result<(), ErrorBody>,
    },
    /// The status this tab shows changed.
    Status(SyncStatus),
    /// Tell this tab's app.
    Event {
        kind: EventKind,
        value: Value,
    },
}

pub struct Lease {
    tab: u64,
    role: Role,
    status: SyncStatus,
    /// This tab's `syncNow()`s posted to the leader and not yet answered.
    forwarded: Vec<u64>,
    /// Engine waiter → the follower (tab, request) it serves.
    serving: BTreeMap<u64, (u64, u64)>,
    next_served: u64,
    effects: VecDeque<LeaseEffect>,
}

fn body(e: &SyncError) -> ErrorBody {
    ErrorBody {
        code: e.code().as_str().to_owned(),
        message: e.to_string(),
        index: None,
    }
}

impl Lease {
    /// `tab` identifies this tab on the channel: random, so two tabs never share one.
    pub fn new(tab: u64) -> Lease {
        Lease {
            tab,
            role: Role::Idle,
            status: SyncStatus::Local,
            forwarded: Vec::new(),
            serving: BTreeMap::new(),
            next_served: 0,
            effects: VecDeque::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The status this tab shows: its engine's when it runs one, else the leader's.
    pub fn status(&self) -> SyncStatus {
        self.status
    }

    pub fn poll_effect(&mut self) -> Option<LeaseEffect> {
        self.effects.pop_front()
    }

    fn emit(&mut self, effect: LeaseEffect) {
        self.effects.push_back(effect);
    }

    /// Whether this tab's own engine serves its `syncNow()`s and writes.
    fn runs_engine(&self) -> bool {
        matches!(self.role, Role::Leader | Role::Solo)
    }

    pub fn handle(&mut self, input: LeaseInput) {
        match input {
            LeaseInput::Start => {
                if self.role == Role::Idle {
                    self.role = Role::Follower;
                    self.emit(LeaseEffect::RequestLock);
                    self.emit(LeaseEffect::Post(TabMessage::Hello));
                }
            }
            LeaseInput::Stop => match self.role {
                Role::Idle => {}
                Role::Follower => {
                    self.role = Role::Idle;
                    self.emit(LeaseEffect::ReleaseLock);
                }
                Role::Leader | Role::Solo => {
                    // Requests served for others still settle; a new leader also gets them.
                    if self.role == Role::Leader {
                        self.emit(LeaseEffect::ReleaseLock);
                    }
                    self.role = Role::Idle;
                    self.emit(LeaseEffect::Engine(Input::Stop));
                }
            },
            LeaseInput::LockGranted => {
                if self.role != Role::Follower {
                    // stop() came first: hand the lock straight on.
                    self.emit(LeaseEffect::ReleaseLock);
                    return;
                }
                self.role = Role::Leader;
                self.run_engine();
                self.emit(LeaseEffect::Post(TabMessage::Leader { tab: self.tab }));
            }
            LeaseInput::LocksUnavailable => {
                if self.role == Role::Follower {
                    self.role = Role::Solo;
                    self.run_engine();
                }
            }
            LeaseInput::SyncNow { waiter } => {
                if self.role == Role::Follower {
                    self.forwarded.push(waiter);
                    self.emit(LeaseEffect::Post(TabMessage::SyncNow {
                        tab: self.tab,
                        request: waiter,
                    }));
                } else {
                    self.emit(LeaseEffect::Engine(Input::SyncNow { waiter }));
                }
            }
            LeaseInput::LocalWrite => match self.role {
                Role::Follower => self.emit(LeaseEffect::Post(TabMessage::Wrote)),
                Role::Leader | Role::Solo => self.emit(LeaseEffect::Engine(Input::LocalWrite)),
                Role::Idle => {}
            },
            LeaseInput::Message(m) => self.on_message(m),
            LeaseInput::EngineStatus(status) => {
                self.set_status(status);
                if self.role == Role::Leader {
                    self.emit(LeaseEffect::Post(TabMessage::Status { status }));
                }
            }
            LeaseInput::EngineSettled { waiter, result } => {
                let error = result.err().map(|e| body(&e));
                match self.serving.remove(&waiter) {
                    Some((tab, request)) => self.emit(LeaseEffect::Post(TabMessage::SyncDone {
                        tab,
                        request,
                        error,
                    })),
                    None => self.emit(LeaseEffect::Settle {
                        waiter,
                        result: error.map_or(Ok(()), Err),
                    }),
                }
            }
            LeaseInput::EngineEvent { kind, value } => {
                if self.role == Role::Leader {
                    self.emit(LeaseEffect::Post(TabMessage::Event {
                        kind,
                        value: value.clone(),
                    }));
                }
                self.emit(LeaseEffect::Event { kind, value });
            }
        }
    }

    /// Starts this tab's engine, which from now on also serves this tab's forwarded requests.
    fn run_engine(&mut self) {
        self.emit(LeaseEffect::Engine(Input::Start));
        for waiter in std::mem::take(&mut self.forwarded) {
            self.emit(LeaseEffect::Engine(Input::SyncNow { waiter }));
        }
    }

    fn set_status(&mut self, status: SyncStatus) {
        if status != self.status {
            self.status = status;
            self.emit(LeaseEffect::Status(status));
        }
    }

    fn on_message(&mut self, message: TabMessage) {
        let leads = self.role == Role::Leader;
        match message {
            TabMessage::Leader { .. } => {
                // The old leader may have gone with our requests: ask the new one.
                for &request in &self.forwarded {
                    self.effects
                        .push_back(LeaseEffect::Post(TabMessage::SyncNow {
                            tab: self.tab,
                            request,
                        }));
                }
            }
            TabMessage::Hello if leads => {
                let status = self.status;
                self.emit(LeaseEffect::Post(TabMessage::Status { status }));
            }
            TabMessage::Wrote if leads => self.emit(LeaseEffect::Engine(Input::LocalWrite)),
            TabMessage::SyncNow { tab, request } if leads => {
                let waiter = SERVED | self.next_served;
                self.next_served += 1;
                self.serving.insert(waiter, (tab, request));
                self.emit(LeaseEffect::Engine(Input::SyncNow { waiter }));
            }
            TabMessage::SyncDone {
                tab,
                request,
                error,
            } if tab == self.tab => {
                if let Some(i) = self.forwarded.iter().position(|&r| r == request) {
                    self.forwarded.remove(i);
                    self.emit(LeaseEffect::Settle {
                        waiter: request,
                        result: error.map_or(Ok(()), Err),
                    });
                }
            }
            TabMessage::Status { status } if !self.runs_engine() => self.set_status(status),
            TabMessage::Event { kind, value } if !self.runs_engine() => {
                self.emit(LeaseEffect::Event { kind, value })
            }
            _ => {}
        }
    }
}
