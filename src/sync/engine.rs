//! The sync engine: a state machine with no I/O (in the manner of quinn-proto). The driver
//! feeds it [`Input`]s with the current time, sends what [`SyncEngine::poll_effect`] asks
//! for, and wakes it at [`SyncEngine::poll_timeout`].
//!
//! A **round** pushes everything pending (batches of ≤ `push_batch` changes of one app; a
//! 413 halves the batch), then pulls the collections it was asked to, page by page while
//! `hasMore`. Every answer is applied through one [`Effect::Apply`] — records, acknowledged
//! pending rows and cursors in one transaction — and the next request waits for it. A
//! failure ends the round: `offline` or `error` retry with backoff, `auth-required` (after
//! one token refresh) and `payment-required` wait for `syncNow()`/`start()`.

use crate::collect::CollectInserted;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::answer::{self, HttpAnswer, Page};
use super::backoff::{Backoff, Random};
use super::error::SyncError;
use super::outbox::{Outbox, PendingRow, RowEdit};
use super::request::{self, HttpRequest};
use super::status::SyncStatus;
use super::Millis;
use crate::protocol::{Change, Conflict, WsClientFrame, WsServerFrame};

/// Changes per push request.
pub const PUSH_BATCH: usize = 500;
/// Changes per pull page.
pub const PULL_LIMIT: usize = 1000;
/// A local write is pushed this long after it (later writes join the same push).
pub const DEBOUNCE: Millis = 250;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub client_id: String,
    pub schema_version: u32,
    /// app → its collections.
    pub apps: BTreeMap<String, Vec<String>>,
    pub push_batch: usize,
    pub pull_limit: usize,
    pub debounce: Millis,
    /// Keep a WebSocket open for `sync-available` notifications.
    pub live: bool,
}

impl EngineConfig {
    pub fn new(client_id: &str, schema_version: u32, apps: BTreeMap<String, Vec<String>>) -> Self {
        EngineConfig {
            client_id: client_id.to_owned(),
            schema_version,
            apps,
            push_batch: PUSH_BATCH,
            pull_limit: PULL_LIMIT,
            debounce: DEBOUNCE,
            live: true,
        }
    }

    fn app_of(&self, collection: &str) -> Option<String> {
        self.apps
            .iter()
            .find(|(_, cs)| cs.iter().any(|c| c == collection))
            .map(|(a, _)| a.clone())
    }

    fn all(&self) -> BTreeSet<(String, String)> {
        self.apps
            .iter()
            .flat_map(|(a, cs)| cs.iter().map(move |c| (a.clone(), c.clone())))
            .collect_inserted()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Sync automatically: push after writes, keep the WebSocket, retry with backoff.
    Start,
    Stop,
    /// Push everything pending now and pull every collection; answered by
    /// [`Effect::Settled`] with the same `waiter`.
    SyncNow {
        waiter: u64,
    },
    /// A local write committed (it is in the pending queue).
    LocalWrite,
    /// The answer to [`Effect::FetchToken`]; `None` = no user (guest, signed out).
    Token(Option<String>),
    /// The answer to [`Effect::ReadPending`]: every pending row, in queue order.
    Pending(Vec<PendingRow>),
    /// Reading the local store for the round failed.
    LocalFailed(SyncError),
    /// The answer to an [`Effect::Http`]; `Err` = the request did not get an answer.
    Http {
        id: u64,
        answer: Result<HttpAnswer, String>,
    },
    /// The answer to an [`Effect::Apply`].
    Applied {
        id: u64,
        result: Result<(), SyncError>,
    },
    WsOpened,
    WsMessage(String),
    WsClosed,
    /// The browser's `online` / `offline` events.
    Online(bool),
}

/// Write this in one transaction: merge `changes` into the records, apply `pending` to the
/// pending rows, store `cursors` (per collection of `app`). Then report `conflicts` (the
/// server's; the merge finds the local ones) and answer [`Input::Applied`].
#[derive(Debug, Clone, PartialEq)]
pub struct Apply {
    pub id: u64,
    pub app: String,
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
    pub cursors: Vec<(String, String)>,
    pub pending: Vec<RowEdit>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the app's `token()`; `refresh` after the server refused the last one.
    FetchToken {
        refresh: bool,
    },
    ReadPending,
    Http(HttpRequest),
    Apply(Apply),
    WsOpen,
    WsSend(String),
    WsClose,
    Status(SyncStatus),
    /// A `syncNow()` is done.
    Settled {
        waiter: u64,
        result: Result<(), SyncError>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Unknown,
    Fetching,
    Have(String),
}

#[derive(Debug)]
enum Step {
    Token,
    ReadPending,
    Push {
        id: u64,
        app: String,
        since: Option<String>,
        size: usize,
    },
    Pull {
        id: u64,
        app: String,
        collection: String,
    },
    Apply {
        id: u64,
        app: String,
        cursors: Vec<(String, String)>,
        /// The next page of a pull, requested while this one is written.
        prefetch: Option<Prefetch>,
    },
}

/// A pull request sent ahead: the network and the server work while the previous page
/// commits. Its answer waits here until that page is written (pages apply in order).
#[derive(Debug)]
struct Prefetch {
    id: u64,
    app: String,
    collection: String,
    answer: Option<Result<HttpAnswer, String>>,
}

#[derive(Debug)]
struct Round {
    waiters: Vec<u64>,
    pulls: BTreeSet<(String, String)>,
    outbox: Option<Outbox>,
    batch_limit: usize,
    step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ws {
    Closed,
    Connecting,
    Authenticating,
    Open,
}

pub struct SyncEngine {
    cfg: EngineConfig,
    rng: Box<dyn Random>,
    cursors: BTreeMap<(String, String), String>,
    running: bool,
    /// auth-required / payment-required: nothing automatic until `syncNow()`/`start()`.
    halted: bool,
    token: Token,
    /// The token in hand was fetched after a 401: a second 401 is final.
    token_refreshed: bool,
    status: SyncStatus,
    round: Option<Round>,
    /// Asked for while a round ran: the next round's waiters and pulls.
    next_waiters: Vec<u64>,
    next_pulls: BTreeSet<(String, String)>,
    push_due: Option<Millis>,
    /// The debounced push came due while a round ran (whose read of the pending queue may
    /// have missed the write): the next round starts when this one ends.
    push_next: bool,
    retry_at: Option<Millis>,
    backoff: Backoff,
    /// The browser said it is offline: nothing automatic (push, retry, reconnect) is tried
    /// until it says online again — each try would only fail.
    offline: bool,
    ws: Ws,
    ws_retry_at: Option<Millis>,
    ws_backoff: Backoff,
    next_id: u64,
    effects: VecDeque<Effect>,
}

impl SyncEngine {
    /// `cursors`: the stored cursor of every (app, collection) pulled before.
    pub fn new(
        cfg: EngineConfig,
        cursors: BTreeMap<(String, String), String>,
        rng: Box<dyn Random>,
    ) -> SyncEngine {
        SyncEngine {
            cfg,
            rng,
            cursors,
            running: false,
            halted: false,
            token: Token::Unknown,
            token_refreshed: false,
            status: SyncStatus::Local,
            offline: false,
            round: None,
            next_waiters: Vec::new(),
            next_pulls: BTreeSet::new(),
            push_due: None,
            push_next: false,
            retry_at: None,
            backoff: Backoff::default(),
            ws: Ws::Closed,
            ws_retry_at: None,
            ws_backoff: Backoff::default(),
            next_id: 0,
            effects: VecDeque::new(),
        }
    }

    pub fn status(&self) -> SyncStatus {
        self.status
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn cursors(&self) -> &BTreeMap<(String, String), String> {
        &self.cursors
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The earliest moment [`SyncEngine::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.offline {
            return None;
        }
        let ws = self.ws_retry_at.filter(|_| self.ws == Ws::Closed);
        [self.push_due, self.retry_at, ws]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        if self.offline {
            return;
        }
        if self.push_due.is_some_and(|t| t <= now) {
            self.push_due = None;
            if self.round.is_some() {
                self.push_next = true;
            } else if self.retry_at.is_none() {
                let pulls = std::mem::take(&mut self.next_pulls);
                self.begin_round(now, pulls, Vec::new());
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.round.is_none() {
                self.begin_round(now, self.cfg.all(), Vec::new());
            }
        }
        if self.ws_retry_at.is_some_and(|t| t <= now) {
            self.ws_retry_at = None;
            self.ensure_ws();
        }
    }

    pub fn handle(&mut self, input: Input, now: Millis) {
        match input {
            Input::Start => {
                self.running = true;
                self.halted = false;
                self.retry_at = None;
                self.request_round(now, self.cfg.all(), None);
                self.ensure_ws();
            }
            Input::Stop => {
                self.running = false;
                self.push_due = None;
                self.retry_at = None;
                self.ws_retry_at = None;
                self.close_ws();
                if self.round.is_none() {
                    self.set_status(SyncStatus::Local);
                }
            }
            Input::SyncNow { waiter } => {
                self.halted = false;
                self.retry_at = None;
                self.request_round(now, self.cfg.all(), Some(waiter));
                self.ensure_ws();
            }
            Input::LocalWrite => {
                if self.running && !self.halted && self.push_due.is_none() {
                    self.push_due = Some(now + self.cfg.debounce);
                }
            }
            Input::Token(token) => self.on_token(token, now),
            Input::Pending(rows) => self.on_pending(rows, now),
            Input::LocalFailed(err) => {
                if self.round.is_some() {
                    self.end_round(now, Err(err));
                }
            }
            Input::Http { id, answer } => self.on_http(id, answer, now),
            Input::Applied { id, result } => self.on_applied(id, result, now),
            Input::WsOpened => self.on_ws_opened(),
            Input::WsMessage(text) => self.on_ws_message(&text, now),
            Input::WsClosed => {
                self.ws = Ws::Closed;
                if self.running && !self.halted {
                    let delay = self.ws_backoff.next_delay(self.rng.as_mut(), None);
                    self.ws_retry_at = Some(now + delay);
                }
            }
            Input::Online(online) => {
                self.offline = !online;
                if !online {
                    if self.running && !self.halted {
                        self.set_status(SyncStatus::Offline);
                    }
                } else if self.running && !self.halted {
                    // Back online: retry (and push what was written offline) at once instead
                    // of waiting out the backoff.
                    self.ws_retry_at = None;
                    let owed = self.retry_at.take().is_some() | self.push_due.take().is_some();
                    if owed {
                        self.request_round(now, self.cfg.all(), None);
                    }
                    self.ensure_ws();
                }
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn set_status(&mut self, status: SyncStatus) {
        if self.status != status {
            self.status = status;
            self.effects.push_back(Effect::Status(status));
        }
    }

    /// Starts a round now, or makes the round after the current one do `pulls` (and settle
    /// `waiter`).
    fn request_round(
        &mut self,
        now: Millis,
        pulls: BTreeSet<(String, String)>,
        waiter: Option<u64>,
    ) {
        if self.round.is_some() {
            self.next_pulls.extend(pulls);
            self.next_waiters.extend(waiter);
            return;
        }
        self.begin_round(now, pulls, waiter.into_iter().collect());
    }

    fn begin_round(&mut self, now: Millis, pulls: BTreeSet<(String, String)>, waiters: Vec<u64>) {
        debug_assert!(self.round.is_none());
        self.push_due = None;
        self.push_next = false;
        self.round = Some(Round {
            waiters,
            pulls,
            outbox: None,
            batch_limit: self.cfg.push_batch,
            step: Step::ReadPending,
        });
        self.set_status(SyncStatus::Syncing);
        self.advance(now);
    }

    /// Issues the round's next request (or ends it).
    fn advance(&mut self, now: Millis) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if !self.running && round.waiters.is_empty() {
            // stop(): an automatic round ends after its last answer was applied.
            self.round = None;
            self.set_status(SyncStatus::Local);
            return;
        }
        let token = match &self.token {
            Token::Have(t) => t.clone(),
            Token::Fetching => {
                round.step = Step::Token;
                return;
            }
            Token::Unknown => {
                round.step = Step::Token;
                self.token = Token::Fetching;
                self.effects
                    .push_back(Effect::FetchToken { refresh: false });
                return;
            }
        };
        let Some(outbox) = round.outbox.as_mut() else {
            round.step = Step::ReadPending;
            self.effects.push_back(Effect::ReadPending);
            return;
        };
        if let Some((app, changes)) = outbox.next_batch(round.batch_limit) {
            let since = choose_since(&self.cfg, &self.cursors, &app);
            let id = self.next_id();
            let size = changes.len();
            let req = request::push(
                id,
                &token,
                &app,
                &self.cfg.client_id,
                since.as_deref(),
                self.cfg.schema_version,
                changes,
            );
            let round = self.round.as_mut().expect("round");
            round.step = Step::Push {
                id,
                app,
                since,
                size,
            };
            self.effects.push_back(Effect::Http(req));
            return;
        }
        if let Some((app, collection)) = round.pulls.pop_first() {
            let since = self
                .cursors
                .get(&(app.clone(), collection.clone()))
                .cloned();
            let id = self.send_pull(&token, &app, &collection, since.as_deref());
            let round = self.round.as_mut().expect("round");
            round.step = Step::Pull {
                id,
                app,
                collection,
            };
            return;
        }
        self.end_round(now, Ok(()));
    }

    /// Sends a pull of one page; returns its request id.
    fn send_pull(&mut self, token: &str, app: &str, collection: &str, since: Option<&str>) -> u64 {
        let id = self.next_id();
        let req = request::pull(
            id,
            token,
            app,
            collection,
            since,
            self.cfg.pull_limit,
            &self.cfg.client_id,
        );
        self.effects.push_back(Effect::Http(req));
        id
    }

    fn end_round(&mut self, now: Millis, result: Result<(), SyncError>) {
        let Some(round) = self.round.take() else {
            return;
        };
        for waiter in round.waiters {
            self.effects.push_back(Effect::Settled {
                waiter,
                result: result.clone(),
            });
        }
        match result {
            Ok(()) => {
                self.backoff.reset();
                self.retry_at = None;
                self.token_refreshed = false;
                if self.push_next || !self.next_waiters.is_empty() || !self.next_pulls.is_empty() {
                    let waiters = std::mem::take(&mut self.next_waiters);
                    let pulls = std::mem::take(&mut self.next_pulls);
                    self.begin_round(now, pulls, waiters);
                } else if self.push_due.is_some() {
                    // Writes came in during the round: their push is due soon.
                } else {
                    self.set_status(if self.running {
                        SyncStatus::Synced
                    } else {
                        SyncStatus::Local
                    });
                }
            }
            Err(err) => self.after_failure(now, err),
        }
    }

    fn after_failure(&mut self, now: Millis, err: SyncError) {
        // What the next round would have settled fails with this round: its cause is the same.
        for waiter in std::mem::take(&mut self.next_waiters) {
            self.effects.push_back(Effect::Settled {
                waiter,
                result: Err(err.clone()),
            });
        }
        self.next_pulls.clear();
        let status = match &err {
            SyncError::NoToken => SyncStatus::Local,
            SyncError::Unauthorized(_) => SyncStatus::AuthRequired,
            SyncError::PaymentRequired(_) => SyncStatus::PaymentRequired,
            SyncError::Network(_) => SyncStatus::Offline,
            _ => SyncStatus::Error,
        };
        self.set_status(status);
        match status {
            SyncStatus::AuthRequired | SyncStatus::PaymentRequired => {
                self.halted = true;
                self.push_due = None;
                self.close_ws();
            }
            SyncStatus::Offline | SyncStatus::Error if self.running => {
                let delay = self
                    .backoff
                    .next_delay(self.rng.as_mut(), err.retry_after());
                self.retry_at = Some(now + delay);
            }
            _ => {}
        }
    }

    fn on_token(&mut self, token: Option<String>, now: Millis) {
        if self.token != Token::Fetching {
            return;
        }
        match token.filter(|t| !t.is_empty()) {
            Some(t) => {
                self.token = Token::Have(t);
                self.ensure_ws();
                if matches!(self.round.as_ref().map(|r| &r.step), Some(Step::Token)) {
                    self.advance(now);
                }
            }
            None => {
                // No user: local only. Asked again on the next write, syncNow or start.
                self.token = Token::Unknown;
                self.token_refreshed = false;
                if self.round.is_some() {
                    self.end_round(now, Err(SyncError::NoToken));
                } else {
                    self.set_status(SyncStatus::Local);
                }
            }
        }
    }

    fn on_pending(&mut self, rows: Vec<PendingRow>, now: Millis) {
        let cfg = &self.cfg;
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if !matches!(round.step, Step::ReadPending) {
            return;
        }
        round.outbox = Some(Outbox::new(rows, |t| cfg.app_of(t)));
        self.advance(now);
    }

    fn on_http(&mut self, id: u64, answer: Result<HttpAnswer, String>, now: Millis) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if let Step::Apply {
            prefetch: Some(p), ..
        } = &mut round.step
        {
            if p.id == id {
                p.answer = Some(answer);
            }
            return;
        }
        if !matches!(round.step, Step::Push { id: i, .. } | Step::Pull { id: i, .. } if i == id) {
            return; // a stale answer (of a request from before a restart of the round)
        }
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                if let Some(outbox) = round.outbox.as_mut() {
                    outbox.unsend();
                }
                if let Step::Pull {
                    app, collection, ..
                } = &round.step
                {
                    round.pulls.insert((app.clone(), collection.clone()));
                }
                self.end_round(now, Err(SyncError::Network(e)));
                return;
            }
        };
        match std::mem::replace(&mut round.step, Step::Token) {
            Step::Push {
                id: i,
                app,
                since,
                size,
            } if i == id => {
                let outbox = round.outbox.as_mut().expect("pushing");
                match answer::push_page(&answer) {
                    Ok(page) => {
                        let edits = outbox.ack();
                        let advanced: Vec<(String, String)> = self.cfg.apps[&app]
                            .iter()
                            .filter(|c| {
                                self.cursors.get(&(app.clone(), (*c).clone())) == since.as_ref()
                            })
                            .map(|c| (c.clone(), page.synced_until.clone()))
                            .collect();
                        if page.has_more {
                            let all = self.cfg.apps[&app].iter().map(|c| (app.clone(), c.clone()));
                            round.pulls.extend(all);
                        }
                        self.apply(app, page, advanced, edits, None);
                    }
                    Err(SyncError::Rejected { status: 413, .. }) if size > 1 => {
                        // Too big for the server: the same changes again, in halves.
                        outbox.unsend();
                        round.batch_limit = (size / 2).max(1);
                        self.advance(now);
                    }
                    Err(err) => {
                        outbox.unsend();
                        self.on_request_error(err, now);
                    }
                }
            }
            Step::Pull {
                id: i,
                app,
                collection,
            } if i == id => match answer::pull_page(&answer, &collection) {
                Ok(page) => {
                    let prefetch = match (&self.token, page.has_more) {
                        (Token::Have(token), true) => {
                            let token = token.clone();
                            let id =
                                self.send_pull(&token, &app, &collection, Some(&page.synced_until));
                            Some(Prefetch {
                                id,
                                app: app.clone(),
                                collection: collection.clone(),
                                answer: None,
                            })
                        }
                        (_, true) => {
                            round.pulls.insert((app.clone(), collection.clone()));
                            None
                        }
                        _ => None,
                    };
                    let cursors = vec![(collection, page.synced_until.clone())];
                    self.apply(app, page, cursors, Vec::new(), prefetch);
                }
                Err(err) => {
                    round.pulls.insert((app, collection));
                    self.on_request_error(err, now);
                }
            },
            other => round.step = other, // a stale answer
        }
    }

    /// 401 once: refresh the token and carry on; twice: `auth-required`.
    fn on_request_error(&mut self, err: SyncError, now: Millis) {
        if matches!(err, SyncError::Unauthorized(_)) && !self.token_refreshed {
            self.token_refreshed = true;
            self.token = Token::Fetching;
            if let Some(round) = self.round.as_mut() {
                round.step = Step::Token;
            }
            self.effects.push_back(Effect::FetchToken { refresh: true });
            return;
        }
        if matches!(err, SyncError::Unauthorized(_)) {
            self.token = Token::Unknown;
        }
        self.end_round(now, Err(err));
    }

    fn apply(
        &mut self,
        app: String,
        page: Page,
        cursors: Vec<(String, String)>,
        pending: Vec<RowEdit>,
        prefetch: Option<Prefetch>,
    ) {
        let collections = &self.cfg.apps[&app];
        let changes: Vec<Change> = page
            .changes
            .into_iter()
            .filter(|c| collections.contains(&c.table))
            .collect();
        let id = self.next_id();
        let round = self.round.as_mut().expect("applying in a round");
        round.step = Step::Apply {
            id,
            app: app.clone(),
            cursors: cursors.clone(),
            prefetch,
        };
        self.effects.push_back(Effect::Apply(Apply {
            id,
            app,
            changes,
            conflicts: page.conflicts,
            cursors,
            pending,
        }));
    }

    fn on_applied(&mut self, id: u64, result: Result<(), SyncError>, now: Millis) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let Step::Apply { id: i, .. } = &round.step else {
            return;
        };
        if *i != id {
            return;
        }
        let Step::Apply {
            app,
            cursors,
            prefetch,
            ..
        } = std::mem::replace(&mut round.step, Step::Token)
        else {
            unreachable!()
        };
        match result {
            Ok(()) => {
                for (collection, cursor) in cursors {
                    self.cursors.insert((app.clone(), collection), cursor);
                }
                self.token_refreshed = false;
                let stopping = !self.running && round.waiters.is_empty();
                match prefetch {
                    Some(p) if !stopping => {
                        round.step = Step::Pull {
                            id: p.id,
                            app: p.app,
                            collection: p.collection,
                        };
                        if let Some(answer) = p.answer {
                            self.on_http(p.id, answer, now);
                        }
                    }
                    _ => self.advance(now),
                }
            }
            Err(err) => {
                // Nothing of the answer was written; the pending rows will be read again.
                round.outbox = None;
                self.end_round(now, Err(err));
            }
        }
    }

    fn ensure_ws(&mut self) {
        if !self.cfg.live || !self.running || self.halted || self.ws != Ws::Closed {
            return;
        }
        if self.ws_retry_at.is_some() {
            return;
        }
        match self.token {
            Token::Have(_) => {
                self.ws = Ws::Connecting;
                self.effects.push_back(Effect::WsOpen);
            }
            Token::Unknown if self.round.is_none() => {
                self.token = Token::Fetching;
                self.effects
                    .push_back(Effect::FetchToken { refresh: false });
            }
            _ => {}
        }
    }

    fn close_ws(&mut self) {
        if self.ws != Ws::Closed {
            self.ws = Ws::Closed;
            self.effects.push_back(Effect::WsClose);
        }
    }

    fn on_ws_opened(&mut self) {
        if self.ws != Ws::Connecting {
            return;
        }
        let Token::Have(token) = &self.token else {
            self.close_ws();
            return;
        };
        let frame = WsClientFrame::Auth {
            token: token.clone(),
            client_id: Some(self.cfg.client_id.clone()),
        };
        self.ws = Ws::Authenticating;
        self.effects.push_back(Effect::WsSend(
            serde_json::to_string(&frame).expect("frames serialise"),
        ));
    }

    /// The socket's token refused (the server then closes it, and it reconnects after a
    /// backoff), as a 401: refreshed once, refused again `auth-required`, never a loop.
    fn on_ws_unauthorized(&mut self, now: Millis) {
        if self.round.is_some() {
            // The round's own requests meet the same token and take the 401 path.
            self.token = Token::Unknown;
        } else if !self.token_refreshed {
            self.token_refreshed = true;
            self.token = Token::Fetching;
            self.effects.push_back(Effect::FetchToken { refresh: true });
        } else {
            self.token = Token::Unknown;
            let err = SyncError::Unauthorized("unauthorized: the live connection's token".into());
            self.after_failure(now, err);
        }
    }

    fn on_ws_message(&mut self, text: &str, now: Millis) {
        let Ok(frame) = serde_json::from_str::<WsServerFrame>(text) else {
            return; // unknown frames are ignored (newer servers)
        };
        match frame {
            WsServerFrame::AuthOk { .. } => {
                let was_reconnect = self.ws_backoff.attempt() > 0;
                self.ws = Ws::Open;
                self.token_refreshed = false;
                self.ws_backoff.reset();
                if was_reconnect {
                    // Notifications may have been missed while the socket was down.
                    self.request_round(now, self.cfg.all(), None);
                }
            }
            WsServerFrame::SyncAvailable { app_id, table } => {
                if self.running
                    && !self.halted
                    && self
                        .cfg
                        .apps
                        .get(&app_id)
                        .is_some_and(|cs| cs.contains(&table))
                {
                    self.request_round(now, BTreeSet::from([(app_id, table)]), None);
                }
            }
            WsServerFrame::Error { code, .. } => {
                if code == "unauthorized" {
                    self.on_ws_unauthorized(now);
                }
            }
            WsServerFrame::Pong => {}
        }
    }
}

/// The `since` of a push: its answer is a page of the whole app from there, so it advances
/// every collection whose cursor is exactly that one. The most common cursor among the app's
/// collections advances the most.
fn choose_since(
    cfg: &EngineConfig,
    cursors: &BTreeMap<(String, String), String>,
    app: &str,
) -> Option<String> {
    let mut counts: Vec<(Option<&String>, usize)> = Vec::new();
    for c in &cfg.apps[app] {
        let cur = cursors.get(&(app.to_owned(), c.clone()));
        match counts.iter_mut().find(|(v, _)| *v == cur) {
            Some((_, n)) => *n += 1,
            None => counts.push((cur, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, n)| *n == best)
        .and_then(|(v, _)| v.cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Half;
    impl Random for Half {
        fn unit(&mut self) -> f64 {
            0.5
        }
    }

    fn drain(e: &mut SyncEngine) -> Vec<Effect> {
        std::iter::from_fn(|| e.poll_effect()).collect()
    }

    fn request_id(effects: &[Effect]) -> u64 {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Http(req) => Some(req.id),
                _ => None,
            })
            .expect("a request")
    }

    /// Found by the server's simulation test: the debounce of a write made during a round
    /// expired before the round ended, and the write stayed pending under `synced`.
    #[test]
    fn a_push_that_comes_due_during_a_round_runs_right_after_it() {
        let apps = BTreeMap::from([("notes".to_string(), vec!["notes".to_string()])]);
        let cfg = EngineConfig {
            live: false,
            ..EngineConfig::new("c1", 1, apps)
        };
        let mut e = SyncEngine::new(cfg, BTreeMap::new(), Box::new(Half));
        e.handle(Input::Start, 0);
        assert!(drain(&mut e).contains(&Effect::FetchToken { refresh: false }));
        e.handle(Input::Token(Some("t".into())), 0);
        assert!(drain(&mut e).contains(&Effect::ReadPending));
        e.handle(Input::Pending(Vec::new()), 0);
        let pull = request_id(&drain(&mut e));
        // A write commits while the pull is in flight; its debounce expires before the answer.
        e.handle(Input::LocalWrite, 10);
        e.handle_timeout(10 + DEBOUNCE);
        assert!(drain(&mut e).is_empty());
        let page = r#"{"serverChanges":[],"syncedUntil":"1","hasMore":false}"#;
        let answer = HttpAnswer {
            status: 200,
            retry_after: None,
            body: page.into(),
        };
        e.handle(
            Input::Http {
                id: pull,
                answer: Ok(answer),
            },
            500,
        );
        let apply = drain(&mut e)
            .into_iter()
            .find_map(|e| match e {
                Effect::Apply(a) => Some(a.id),
                _ => None,
            })
            .expect("an apply");
        e.handle(
            Input::Applied {
                id: apply,
                result: Ok(()),
            },
            500,
        );
        let after = drain(&mut e);
        assert!(after.contains(&Effect::ReadPending), "{after:?}");
        assert!(
            !after.contains(&Effect::Status(SyncStatus::Synced)),
            "{after:?}"
        );
    }
}
