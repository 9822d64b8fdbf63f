//! The world of one seed: the server, the devices, the events still to come, and the
//! simulated time. Everything random is drawn from the seed, in a fixed order.

use mana_sync::protocol::Changeset;
use mana_sync::sync::answer::HttpAnswer;
use mana_sync::sync::request::RequestKind;
use mana_sync::sync::{Effect, HttpRequest, Input, Millis, SyncError, SyncStatus};
use mana_sync::Change;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::device::{Device, Schema};
use super::net::{Event, Faults, Queue, Task, REQUEST_TIMEOUT};
use super::rng::Rng;
use super::server::SimServer;
use super::{Failure, Options, Stats};

/// Wall-clock time at simulated time 0 (2026-11-25T10:00Z).
pub const EPOCH: u64 = 1_795_600_800_000;
/// Events handled by one `run_until` before the world is declared stuck.
const MAX_STEPS: usize = 200_000;

pub struct World<'rt> {
    rt: &'rt Runtime,
    pub rng: Rng,
    pub now: Millis,
    pub schema: Schema,
    pub server: SimServer,
    pub devices: Vec<Device>,
    queue: Queue,
    pub faults: Faults,
    /// Every change any device wrote.
    pub generated: Vec<Change>,
    pub stats: Stats,
    pub trace: Option<Vec<String>>,
    violation: Option<Failure>,
    pub(super) counter: u64,
    /// The actor of every write of this seed, unless `mixed_actors`.
    pub(super) actor: Option<Value>,
    pub(super) mixed_actors: bool,
}

impl<'rt> World<'rt> {
    pub fn new(seed: u64, rt: &'rt Runtime, devices: usize, opts: Options) -> World<'rt> {
        let mut rng = Rng::new(seed);
        let schema = Schema::new(rng.bytes());
        let faults = Faults::chaos(&mut rng);
        let actor = rng.chance(0.5).then(|| json!({"kind": "ai"}));
        let mut w = World {
            rt,
            rng,
            now: 0,
            schema,
            server: SimServer::start(rt, super::device::USER),
            devices: Vec::new(),
            queue: Queue::default(),
            faults,
            generated: Vec::new(),
            stats: Stats::default(),
            trace: opts.trace.then(Vec::new),
            violation: None,
            counter: 0,
            actor,
            mixed_actors: opts.mixed_actors,
        };
        w.log(|| format!("seed {seed}: {faults:?}"));
        for _ in 0..devices {
            w.add_device();
        }
        w
    }

    pub fn rt(&self) -> &'rt Runtime {
        self.rt
    }

    pub fn add_device(&mut self) -> usize {
        let index = self.devices.len();
        let batch = self.rng.range(2, 5) as usize;
        let limit = self.rng.range(3, 7) as usize;
        let skew = self.rng.range(0, 6_000) as i64 - 3_000;
        let dev = Device::new(index, &self.schema, (batch, limit), skew, self.rng.fork());
        self.log(|| format!("d{index}: push_batch {batch}, pull_limit {limit}, skew {skew} ms"));
        self.devices.push(dev);
        index
    }

    pub fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("{:>9} {}", self.now, line()));
        }
    }

    pub(super) fn violate(&mut self, invariant: &'static str, detail: String) {
        self.log(|| format!("VIOLATION {invariant}: {detail}"));
        if self.violation.is_none() {
            self.violation = Some(Failure { invariant, detail });
        }
    }

    pub fn check(&mut self) -> Result<(), Failure> {
        self.violation.take().map_or(Ok(()), Err)
    }

    // ---- driving the engines ----

    pub(super) fn feed(&mut self, d: usize, input: Input) {
        self.devices[d].engine.handle(input, self.now);
        self.drain(d);
    }

    fn drain(&mut self, d: usize) {
        while let Some(effect) = self.devices[d].engine.poll_effect() {
            self.on_effect(d, effect);
        }
    }

    fn on_effect(&mut self, d: usize, effect: Effect) {
        match effect {
            Effect::FetchToken { refresh } => {
                let bad = self.rng.chance(self.faults.bad_token);
                self.log(|| {
                    format!(
                        "d{d} token (refresh {refresh}) -> {}",
                        if bad { "bad" } else { "good" }
                    )
                });
                let token = if bad {
                    self.stats.bad_tokens += 1;
                    "not-a-token".to_owned()
                } else {
                    self.server.token.clone()
                };
                self.devices[d]
                    .engine
                    .handle(Input::Token(Some(token)), self.now);
            }
            Effect::ReadPending => self.local_task(d, Task::ReadPending),
            Effect::Http(req) => self.send(d, req),
            Effect::Apply(a) => self.local_task(d, Task::Apply(a)),
            Effect::Settled { waiter, result } => self.on_settled(d, waiter, result),
            Effect::Status(s) => self.on_status(d, s),
            other => self.violate("no-websocket-when-not-live", format!("d{d}: {other:?}")),
        }
    }

    fn on_settled(&mut self, d: usize, waiter: u64, result: Result<(), SyncError>) {
        self.log(|| format!("d{d} settled w{waiter}: {result:?}"));
        let dev = &mut self.devices[d];
        let known = dev.waiters.remove(&waiter);
        dev.settled.insert(waiter, result);
        if !known {
            self.violate(
                "each-syncnow-settles-once",
                format!("d{d}: waiter {waiter}"),
            );
        }
    }

    fn on_status(&mut self, d: usize, status: SyncStatus) {
        self.log(|| format!("d{d} status {}", status.as_str()));
        let dev = &mut self.devices[d];
        dev.status = status;
        if status == SyncStatus::Synced && !dev.store.pending.is_empty() {
            let rows: Vec<u64> = dev.store.pending.iter().map(|r| r.key).collect();
            self.violate(
                "synced-means-nothing-pending",
                format!("d{d} says synced with pending rows {rows:?}"),
            );
        }
    }

    fn local_task(&mut self, d: usize, task: Task) {
        let at = self.now + self.rng.range(0, 40);
        let gen = self.devices[d].gen;
        self.queue.push(at, Event::Task { dev: d, gen, task });
    }

    // ---- the network ----

    fn send(&mut self, d: usize, req: HttpRequest) {
        let push = matches!(req.kind, RequestKind::Push { .. });
        if push {
            self.stats.pushes += 1;
        } else {
            self.stats.pulls += 1;
        }
        let gen = self.devices[d].gen;
        let flight = super::device::Flight {
            push,
            reached_server: false,
        };
        self.devices[d].inflight.insert(req.id, flight);
        let timeout = Event::Timeout {
            dev: d,
            gen,
            id: req.id,
        };
        if self.devices[d].offline {
            // "Failed to fetch", at once.
            self.log(|| format!("d{d} -> {} fails: offline", describe(&req)));
            let at = self.now + self.rng.range(1, 30);
            self.queue.push(at, timeout);
            return;
        }
        self.queue.push(self.now + REQUEST_TIMEOUT, timeout);
        let f = self.faults;
        if self.rng.chance(f.lose_request) {
            self.stats.lost += 1;
            self.log(|| format!("d{d} -> {} LOST", describe(&req)));
            return;
        }
        if self.rng.chance(f.synthetic) {
            if let Some(answer) = self.synthetic(&req) {
                self.stats.synthetic += 1;
                self.log(|| {
                    format!(
                        "d{d} -> {} answered {} by the network",
                        describe(&req),
                        answer.status
                    )
                });
                let at = self.now + f.latency(&mut self.rng);
                let id = req.id;
                self.queue.push(
                    at,
                    Event::Answer {
                        dev: d,
                        gen,
                        id,
                        answer,
                    },
                );
                return;
            }
        }
        let at = self.now + f.latency(&mut self.rng);
        let reply = !self.rng.chance(f.lose_answer);
        self.log(|| {
            format!(
                "d{d} -> {}{}",
                describe(&req),
                if reply { "" } else { " (answer will be lost)" }
            )
        });
        if self.rng.chance(f.duplicate) {
            self.stats.duplicates += 1;
            let later = at + self.rng.range(0, 20_000);
            let dup = Event::Server {
                dev: d,
                gen,
                req: req.clone(),
                reply: false,
            };
            self.queue.push(later, dup);
        }
        self.queue.push(
            at,
            Event::Server {
                dev: d,
                gen,
                req,
                reply,
            },
        );
    }

    /// A proxy's or the server's overload answer instead of the real one.
    fn synthetic(&mut self, req: &HttpRequest) -> Option<HttpAnswer> {
        let size = push_size(req);
        let answer = |status, retry_after, body: &str| HttpAnswer {
            status,
            retry_after,
            body: body.into(),
        };
        Some(match self.rng.below(3) {
            0 => answer(503, None, "<html>Service Unavailable</html>"),
            1 => {
                let secs = self.rng.range(1, 5);
                answer(
                    429,
                    Some(secs * 1000),
                    r#"{"code":"rate_limited","message":"slow down"}"#,
                )
            }
            _ if size > 1 => answer(
                413,
                None,
                r#"{"code":"payload_too_large","message":"request body exceeds MAX_BODY_BYTES"}"#,
            ),
            _ => return None,
        })
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Server {
                dev,
                gen,
                req,
                reply,
            } => self.at_server(dev, gen, req, reply),
            Event::Answer {
                dev,
                gen,
                id,
                answer,
            } => {
                let Some(push) = self.take_flight(dev, gen, id) else {
                    return;
                };
                self.log(|| format!("d{dev} <- #{id} {}", describe_answer(&answer)));
                if !push && answer.status == 200 {
                    let more = has_more(&answer.body);
                    self.devices[dev].mid_pull = more;
                    if more {
                        self.stats.paged_pulls += 1;
                        let p = (4.0 * self.faults.crash).min(0.5);
                        self.maybe_crash(dev, 300, p);
                    }
                }
                self.feed(
                    dev,
                    Input::Http {
                        id,
                        answer: Ok(answer),
                    },
                );
            }
            Event::Timeout { dev, gen, id } => {
                if self.take_flight(dev, gen, id).is_none() {
                    return;
                }
                self.stats.timeouts += 1;
                self.log(|| format!("d{dev} <- #{id} timeout"));
                let answer = Err("timeout".to_owned());
                self.feed(dev, Input::Http { id, answer });
            }
            Event::Online { dev } => self.go_online(dev),
            Event::Crash { dev, gen } => {
                if gen == self.devices[dev].gen {
                    self.restart(dev);
                }
            }
            Event::Task { dev, gen, task } => {
                if gen != self.devices[dev].gen {
                    return;
                }
                match task {
                    Task::ReadPending => self.read_pending(dev),
                    Task::Apply(a) => self.apply(dev, a),
                }
            }
        }
    }

    /// The one outcome of a request of this generation: `Some(is_push)` the first time.
    fn take_flight(&mut self, d: usize, gen: u32, id: u64) -> Option<bool> {
        let dev = &mut self.devices[d];
        if dev.gen != gen {
            return None;
        }
        dev.inflight.remove(&id).map(|f| f.push)
    }

    fn at_server(&mut self, d: usize, gen: u32, req: HttpRequest, reply: bool) {
        let answer = self.server.call(self.rt, &req);
        self.stats.server_calls += 1;
        self.log(|| {
            format!(
                "server {} (d{d} gen {gen}) -> {}",
                describe(&req),
                describe_answer(&answer)
            )
        });
        let refused_token = answer.status == 401 && req.token != self.server.token;
        if answer.status != 200 && !refused_token {
            let detail = format!("{} -> {} {}", describe(&req), answer.status, answer.body);
            self.violate("server-accepts-engine-requests", detail);
        }
        let dev = &mut self.devices[d];
        if gen != dev.gen {
            return;
        }
        let push = match dev.inflight.get_mut(&req.id) {
            Some(f) => {
                f.reached_server = true;
                f.push
            }
            None => false,
        };
        if push && answer.status == 200 {
            self.maybe_crash(d, 200, self.faults.crash);
        }
        if reply {
            let at = self.now + self.faults.latency(&mut self.rng);
            let id = req.id;
            self.queue.push(
                at,
                Event::Answer {
                    dev: d,
                    gen,
                    id,
                    answer,
                },
            );
        }
    }

    /// With chance `p`, reloads the device within `window` ms (usually before its next
    /// answer).
    fn maybe_crash(&mut self, d: usize, window: Millis, p: f64) {
        if self.rng.chance(p) {
            let at = self.now + self.rng.range(0, window);
            let gen = self.devices[d].gen;
            self.queue.push(at, Event::Crash { dev: d, gen });
        }
    }

    /// The driver's read of the pending queue (which may fail, like any IndexedDB read).
    fn read_pending(&mut self, d: usize) {
        if self.rng.chance(self.faults.apply_fails) {
            self.stats.local_failures += 1;
            self.log(|| format!("d{d} reading the pending queue FAILS"));
            let err = SyncError::Local {
                code: mana_sync::ErrorCode::Storage,
                message: "simulated read error".into(),
            };
            self.feed(d, Input::LocalFailed(err));
            return;
        }
        let rows = self.devices[d].store.pending.clone();
        self.feed(d, Input::Pending(rows));
    }

    /// The driver's commit of an [`Effect::Apply`], then [`Input::Applied`].
    fn apply(&mut self, d: usize, a: mana_sync::sync::Apply) {
        if self.rng.chance(self.faults.apply_fails) {
            self.stats.local_failures += 1;
            self.log(|| format!("d{d} apply #{} FAILS (quota)", a.id));
            let err = SyncError::Local {
                code: mana_sync::ErrorCode::QuotaExceeded,
                message: "simulated quota error".into(),
            };
            self.feed(
                d,
                Input::Applied {
                    id: a.id,
                    result: Err(err),
                },
            );
            return;
        }
        self.commit(d, &a);
        self.feed(
            d,
            Input::Applied {
                id: a.id,
                result: Ok(()),
            },
        );
    }

    fn commit(&mut self, d: usize, a: &mana_sync::sync::Apply) {
        self.log(|| {
            format!(
                "d{d} apply #{} {}: {} changes, cursors {:?}, edits {:?}",
                a.id,
                a.app,
                a.changes.len(),
                a.cursors,
                a.pending
            )
        });
        if let Err(e) = self.devices[d].store.commit(a) {
            self.violate("pending-edits-match-rows", format!("d{d}: {e}"));
        }
    }

    // ---- time ----

    /// Handles every event and engine timer due up to `target`, in time order.
    pub fn run_until(&mut self, target: Millis) -> Result<(), Failure> {
        for _ in 0..MAX_STEPS {
            let timer = self
                .devices
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.engine.poll_timeout().map(|t| (t, i)))
                .min();
            let event = self.queue.next_at();
            let (at, timer_dev) = match (timer, event) {
                (Some((t, i)), Some(e)) if t <= e => (t, Some(i)),
                (Some((t, i)), None) => (t, Some(i)),
                (_, Some(e)) => (e, None),
                (None, None) => break,
            };
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            match timer_dev {
                Some(d) => {
                    self.devices[d].engine.handle_timeout(self.now);
                    self.drain(d);
                }
                None => {
                    let event = self.queue.pop().expect("an event is due");
                    self.on_event(event);
                }
            }
            self.check()?;
        }
        if self.queue.next_at().is_some_and(|t| t <= target) {
            return Err(Failure {
                invariant: "no-livelock",
                detail: format!("more than {MAX_STEPS} events before t={target}"),
            });
        }
        self.now = self.now.max(target);
        Ok(())
    }

    // ---- operations ----

    pub fn boot(&mut self, d: usize) {
        self.log(|| format!("d{d} boots"));
        self.devices[d].started = true;
        self.feed(d, Input::Start);
        if self.devices[d].offline {
            self.feed(d, Input::Online(false));
        }
    }

    /// The browser goes offline for 5–90 s (its `offline` event, then `online`).
    fn go_offline(&mut self, d: usize) {
        if self.devices[d].offline || !self.rng.chance(self.faults.offline) {
            return;
        }
        let back = self.now + self.rng.range(5_000, 90_000);
        self.log(|| format!("d{d} goes offline until {back}"));
        self.stats.offline_periods += 1;
        self.devices[d].offline = true;
        self.queue.push(back, Event::Online { dev: d });
        self.feed(d, Input::Online(false));
    }

    pub fn go_online(&mut self, d: usize) {
        if !self.devices[d].offline {
            return;
        }
        self.log(|| format!("d{d} is back online"));
        self.devices[d].offline = false;
        self.feed(d, Input::Online(true));
    }

    /// One random operation of the chaos phase.
    pub fn random_op(&mut self) -> Result<(), Failure> {
        let d = self.rng.index(self.devices.len());
        match self.rng.below(100) {
            0..=29 => {
                // Devices write unevenly: the last mostly reads, so it catches up by
                // paginated pulls rather than by its pushes' answers.
                let writer = [0, 0, 0, 1, 1, 2][self.rng.index(6)] % self.devices.len();
                self.write(writer)
            }
            30..=37 => {
                self.sync_now(d);
            }
            38..=41 => self.restart_someone(),
            42..=44 => self.go_offline(d),
            45..=76 => return self.advance(1, 400),
            77..=94 => return self.advance(400, 3_000),
            _ => return self.advance(3_000, 20_000),
        }
        self.check()
    }

    fn advance(&mut self, lo: Millis, hi: Millis) -> Result<(), Failure> {
        let dt = self.rng.range(lo, hi);
        self.run_until(self.now + dt)
    }

    pub fn sync_now(&mut self, d: usize) -> u64 {
        self.counter += 1;
        let waiter = self.counter;
        self.log(|| format!("d{d} syncNow w{waiter}"));
        self.devices[d].waiters.insert(waiter);
        self.feed(d, Input::SyncNow { waiter });
        waiter
    }

    /// A restart, aimed at a device with a push in flight (preferably one the server already
    /// applied), or one in the middle of a paginated pull, or anyone.
    fn restart_someone(&mut self) {
        let all: Vec<usize> = (0..self.devices.len()).collect();
        let aimed: Vec<usize> = match self.rng.below(3) {
            0 => {
                let applied: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|&i| self.devices[i].push_reached_server())
                    .collect();
                if applied.is_empty() {
                    all.iter()
                        .copied()
                        .filter(|&i| self.devices[i].push_in_flight())
                        .collect()
                } else {
                    applied
                }
            }
            1 => all
                .iter()
                .copied()
                .filter(|&i| self.devices[i].mid_pull)
                .collect(),
            _ => Vec::new(),
        };
        let d = if aimed.is_empty() {
            *self.rng.pick(&all)
        } else {
            *self.rng.pick(&aimed)
        };
        self.restart(d);
    }

    /// A page reload: the engine and whatever it had in flight are gone. An apply that was
    /// committing commits or not; a request already on the wire may still reach the server.
    pub fn restart(&mut self, d: usize) {
        let dev = &self.devices[d];
        let (push, applied, mid_pull) = (
            dev.push_in_flight(),
            dev.push_reached_server(),
            dev.mid_pull,
        );
        self.stats.restarts += 1;
        self.stats.restarts_push_in_flight += push as u64;
        self.stats.restarts_push_applied += applied as u64;
        self.stats.restarts_mid_pull += mid_pull as u64;
        self.log(|| {
            format!("d{d} RESTARTS (push in flight {push}, applied {applied}, mid-pull {mid_pull})")
        });
        for (at, event) in self.queue.take_device(d) {
            self.outlive_page(d, at, event);
        }
        let rng = self.rng.fork();
        self.devices[d].new_engine(rng);
        self.boot(d);
    }

    /// What of a device's pending event survives its page: an apply that was committing
    /// commits or not, a request on the wire still reaches the server or not (its answer
    /// has no one to go to), the network comes back; the rest is gone.
    fn outlive_page(&mut self, d: usize, at: Millis, event: Event) {
        let gen = self.devices[d].gen;
        match event {
            Event::Task {
                gen: g,
                task: Task::Apply(a),
                ..
            } if g == gen && self.rng.chance(0.5) => {
                self.log(|| format!("d{d} apply #{} commits as the page dies", a.id));
                self.commit(d, &a);
            }
            Event::Server { dev, gen, req, .. } if self.rng.chance(0.5) => {
                let reply = false;
                self.queue.push(
                    at,
                    Event::Server {
                        dev,
                        gen,
                        req,
                        reply,
                    },
                );
            }
            Event::Online { dev } => self.queue.push(at, Event::Online { dev }),
            _ => {}
        }
    }
}

fn push_size(req: &HttpRequest) -> usize {
    req.body
        .as_deref()
        .and_then(|b| serde_json::from_str::<Changeset>(b).ok())
        .map_or(0, |c| c.changes.len())
}

fn has_more(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| v["hasMore"] == json!(true))
}

fn describe(req: &HttpRequest) -> String {
    match &req.kind {
        RequestKind::Push { app } => {
            let cs = req
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Changeset>(b).ok());
            let (n, since) = cs.map_or((0, None), |c| (c.changes.len(), c.since));
            format!("#{} push {app} n={n} since={since:?}", req.id)
        }
        RequestKind::Pull { app, collection } => {
            let since = req
                .query
                .iter()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.as_str());
            format!("#{} pull {app}/{collection} since={since:?}", req.id)
        }
    }
}

fn describe_answer(a: &HttpAnswer) -> String {
    let Ok(v) = serde_json::from_str::<Value>(&a.body) else {
        return format!("{}", a.status);
    };
    if a.status != 200 {
        return format!("{} {}", a.status, v["code"]);
    }
    let n = v["serverChanges"].as_array().map_or(0, Vec::len);
    let conflicts = v["conflicts"].as_array().map_or(0, Vec::len);
    format!(
        "200 changes={n} conflicts={conflicts} until={} more={}",
        v["syncedUntil"], v["hasMore"]
    )
}
