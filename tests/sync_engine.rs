//! The sync engine's state machine, natively: fake clock, fixed random source, scripted
//! answers. Every decision (status, retry schedule, batching, acknowledgements, cursors,
//! token refresh) is visible in the effects.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

use mana_sync::protocol::{Change, Op};
use mana_sync::sync::answer::HttpAnswer;
use mana_sync::sync::{
    Effect, EngineConfig, HttpMethod, HttpRequest, Input, PendingRow, Random, RowEdit, SyncEngine,
    SyncStatus,
};
use serde_json::{json, Value};

struct Fixed(f64);
impl Random for Fixed {
    fn unit(&mut self) -> f64 {
        self.0
    }
}

struct Sim {
    engine: SyncEngine,
    now: u64,
    effects: Vec<Effect>,
}

fn apps() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        (
            "notes".to_string(),
            vec!["notes".to_string(), "tags".to_string()],
        ),
        ("todo".to_string(), vec!["tasks".to_string()]),
    ])
}

fn change(table: &str, n: usize) -> Change {
    Change {
        event_id: format!("0190a6f0-0000-7000-8000-{n:012}"),
        table: table.into(),
        id: format!("r{n}"),
        op: Op::Delete,
        data: None,
        fields: None,
        deleted_at: Some("2026-11-25T10:00:00.000Z-0000-0000000000000001".into()),
        updated_at: None,
        schema_version: None,
        actor: None,
        space_id: None,
        seq: None,
    }
}

fn rows(table: &str, sizes: &[usize]) -> Vec<PendingRow> {
    let mut n = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(k, size)| PendingRow {
            key: k as u64 + 1,
            changes: (0..*size)
                .map(|_| {
                    n += 1;
                    change(table, n)
                })
                .collect(),
        })
        .collect()
}

fn page(cursor: &str, has_more: bool) -> String {
    json!({"serverChanges": [], "conflicts": [], "syncedUntil": cursor, "hasMore": has_more})
        .to_string()
}

impl Sim {
    fn new(live: bool) -> Sim {
        let cfg = EngineConfig {
            live,
            ..EngineConfig::new("client-1", 1, apps())
        };
        Sim {
            engine: SyncEngine::new(cfg, BTreeMap::new(), Box::new(Fixed(0.999_999))),
            now: 1_000,
            effects: Vec::new(),
        }
    }

    fn input(&mut self, input: Input) {
        self.engine.handle(input, self.now);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(e) = self.engine.poll_effect() {
            self.effects.push(e);
        }
    }

    fn advance_to(&mut self, t: u64) {
        self.now = t;
        self.engine.handle_timeout(t);
        self.collect();
    }

    fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The single effect of a kind among those pending, removing it.
    fn expect<T>(&mut self, what: &str, f: impl Fn(&Effect) -> Option<T>) -> T {
        let i = self
            .effects
            .iter()
            .position(|e| f(e).is_some())
            .unwrap_or_else(|| panic!("no {what} among {:#?}", self.effects));
        f(&self.effects.remove(i)).unwrap()
    }

    fn http(&mut self) -> HttpRequest {
        self.expect("request", |e| match e {
            Effect::Http(r) => Some(r.clone()),
            _ => None,
        })
    }

    fn answer(&mut self, req: &HttpRequest, status: u16, body: &str) {
        self.input(Input::Http {
            id: req.id,
            answer: Ok(HttpAnswer {
                status,
                retry_after: None,
                body: body.into(),
            }),
        });
    }

    /// The pending `Apply`, not yet answered.
    fn apply_effect(&mut self) -> mana_sync::sync::Apply {
        self.expect("apply", |e| match e {
            Effect::Apply(a) => Some(a.clone()),
            _ => None,
        })
    }

    fn apply_ok(&mut self) -> mana_sync::sync::Apply {
        let apply = self.apply_effect();
        self.input(Input::Applied {
            id: apply.id,
            result: Ok(()),
        });
        apply
    }

    /// Start, token, empty queue: the engine is about to pull.
    fn started(live: bool) -> Sim {
        let mut s = Sim::new(live);
        s.input(Input::Start);
        assert!(s.take().contains(&Effect::FetchToken { refresh: false }));
        s.input(Input::Token(Some("tok".into())));
        s
    }

    /// Answers every pull with an empty last page until the round ends.
    fn finish_pulls(&mut self) {
        while let Some(i) = self
            .effects
            .iter()
            .position(|e| matches!(e, Effect::Http(_)))
        {
            let Effect::Http(req) = self.effects.remove(i) else {
                unreachable!()
            };
            assert_eq!(req.method, HttpMethod::Get, "{req:?}");
            self.answer(&req, 200, &page("9", false));
            self.apply_ok();
        }
    }
}

#[test]
fn a_round_pushes_in_batches_per_app_then_pulls_every_collection() {
    let mut s = Sim::started(false);
    assert!(s.take().contains(&Effect::ReadPending));
    let mut queue = rows("notes", &[700, 500]);
    queue.extend(rows("tasks", &[3]).into_iter().map(|mut r| {
        r.key = 9;
        r
    }));
    s.input(Input::Pending(queue));
    let mut pushed = Vec::new();
    let mut edits = Vec::new();
    for expected in [500, 500, 200, 3] {
        let req = s.http();
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body["changes"].as_array().unwrap().len(),
            expected,
            "{}",
            req.path
        );
        assert_eq!(body["clientId"], "client-1");
        pushed.push(req.path.clone());
        s.answer(&req, 200, &page("5", false));
        edits.extend(s.apply_ok().pending);
    }
    assert_eq!(
        pushed,
        ["/sync/notes", "/sync/notes", "/sync/notes", "/sync/todo"]
    );
    assert!(matches!(&edits[0], RowEdit::Replace { key: 1, changes } if changes.len() == 200));
    assert_eq!(edits[1], RowEdit::Delete(1));
    assert!(matches!(&edits[2], RowEdit::Replace { key: 2, changes } if changes.len() == 200));
    assert_eq!(&edits[3..], [RowEdit::Delete(2), RowEdit::Delete(9)]);
    // The push answers advanced every collection (all had the same, absent cursor), so the
    // pulls start from there.
    let mut pulled = Vec::new();
    while let Some(req) = s.effects.iter().find_map(|e| match e {
        Effect::Http(r) => Some(r.clone()),
        _ => None,
    }) {
        s.effects.retain(|e| !matches!(e, Effect::Http(_)));
        let q: BTreeMap<_, _> = req.query.iter().cloned().collect();
        pulled.push((
            req.path.clone(),
            q["collection"].clone(),
            q.get("since").cloned(),
        ));
        s.answer(&req, 200, &page("6", false));
        s.apply_ok();
    }
    assert_eq!(
        pulled,
        [
            ("/sync/notes/pull".into(), "notes".into(), Some("5".into())),
            ("/sync/notes/pull".into(), "tags".into(), Some("5".into())),
            ("/sync/todo/pull".into(), "tasks".into(), Some("5".into())),
        ]
    );
    assert_eq!(s.engine.status(), SyncStatus::Synced);
    assert_eq!(s.engine.cursors().len(), 3);
}

#[test]
fn a_pull_loops_while_has_more_and_a_cursor_moves_only_once_applied() {
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(vec![]));
    let req = s.http();
    s.answer(&req, 200, &page("snapshot:9:1000", true));
    let apply = s.apply_effect();
    assert_eq!(
        apply.cursors,
        [("notes".to_string(), "snapshot:9:1000".to_string())]
    );
    assert!(
        s.engine.cursors().is_empty(),
        "not before the page is written"
    );
    s.input(Input::Applied {
        id: apply.id,
        result: Ok(()),
    });
    let next = s.http();
    assert!(next
        .query
        .contains(&("since".into(), "snapshot:9:1000".into())));
    // A failed write of a page: nothing moves, the round fails with the store's code.
    s.answer(&next, 200, &page("9", false));
    let apply = s.apply_effect();
    s.input(Input::Applied {
        id: apply.id,
        result: Err(mana_sync::sync::SyncError::Local {
            code: mana_sync::ErrorCode::QuotaExceeded,
            message: "full".into(),
        }),
    });
    assert_eq!(
        s.engine.cursors().values().collect::<Vec<_>>(),
        ["snapshot:9:1000"]
    );
    assert_eq!(s.engine.status(), SyncStatus::Error);
}

/// Status, retry and syncNow outcome per answer.
#[test]
fn answers_drive_the_status_machine() {
    struct Case {
        status: u16,
        body: &'static str,
        retry_after: Option<u64>,
        then: SyncStatus,
        code: &'static str,
        retry_at_least: Option<u64>,
    }
    let cases = [
        Case {
            status: 0,
            body: "",
            retry_after: None,
            then: SyncStatus::Offline,
            code: "network",
            retry_at_least: Some(0),
        },
        Case {
            status: 402,
            body: r#"{"code":"payment_required","message":"x"}"#,
            retry_after: None,
            then: SyncStatus::PaymentRequired,
            code: "payment_required",
            retry_at_least: None,
        },
        Case {
            status: 422,
            body: r#"{"code":"schema_version_unsupported","message":"x"}"#,
            retry_after: None,
            then: SyncStatus::Error,
            code: "schema_version_unsupported",
            retry_at_least: Some(0),
        },
        Case {
            status: 429,
            body: r#"{"code":"rate_limited","message":"x"}"#,
            retry_after: Some(5_000),
            then: SyncStatus::Error,
            code: "rate_limited",
            retry_at_least: Some(5_000),
        },
        Case {
            status: 500,
            body: "oops",
            retry_after: None,
            then: SyncStatus::Error,
            code: "server_error",
            retry_at_least: Some(0),
        },
        // The server's database unreachable: a 503 with its Retry-After.
        Case {
            status: 503,
            body: r#"{"code":"unavailable","message":"x"}"#,
            retry_after: Some(1_000),
            then: SyncStatus::Error,
            code: "server_error",
            retry_at_least: Some(1_000),
        },
        Case {
            status: 200,
            body: "{not json",
            retry_after: None,
            then: SyncStatus::Error,
            code: "protocol_error",
            retry_at_least: Some(0),
        },
        Case {
            status: 400,
            body: r#"{"code":"missing_fields","message":"changes[0]"}"#,
            retry_after: None,
            then: SyncStatus::Error,
            code: "rejected",
            retry_at_least: Some(0),
        },
    ];
    for case in cases {
        let mut s = Sim::started(false);
        s.input(Input::SyncNow { waiter: 7 });
        s.take();
        s.input(Input::Pending(rows("notes", &[2])));
        let req = s.http();
        if case.status == 0 {
            s.input(Input::Http {
                id: req.id,
                answer: Err("refused".into()),
            });
        } else {
            s.input(Input::Http {
                id: req.id,
                answer: Ok(HttpAnswer {
                    status: case.status,
                    retry_after: case.retry_after,
                    body: case.body.into(),
                }),
            });
        }
        let label = format!("{} {}", case.status, case.body);
        assert_eq!(s.engine.status(), case.then, "{label}");
        assert!(
            !s.effects.iter().any(|e| matches!(e, Effect::Apply(_))),
            "{label}: nothing applied"
        );
        let settled = s.expect("settled", |e| match e {
            Effect::Settled { waiter: 7, result } => Some(result.clone()),
            _ => None,
        });
        assert_eq!(settled.unwrap_err().code(), case.code, "{label}");
        match case.retry_at_least {
            Some(min) => {
                let at = s.engine.poll_timeout().expect(&label);
                assert!(
                    at >= s.now + min && at <= s.now + min.max(500),
                    "{label}: retry at {at}"
                );
                // The retry is a full round.
                s.advance_to(at);
                assert!(s.take().contains(&Effect::ReadPending), "{label}");
            }
            None => {
                assert_eq!(s.engine.poll_timeout(), None, "{label}: halted");
                s.input(Input::LocalWrite);
                assert_eq!(s.engine.poll_timeout(), None, "{label}: writes wait");
                s.input(Input::SyncNow { waiter: 8 });
                assert!(
                    s.take().contains(&Effect::ReadPending),
                    "{label}: syncNow resumes"
                );
            }
        }
    }
}

#[test]
fn a_refused_token_is_refreshed_once_then_auth_is_required() {
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(rows("notes", &[1])));
    let req = s.http();
    s.answer(&req, 401, r#"{"code":"unauthorized","message":"expired"}"#);
    assert_eq!(s.take(), [Effect::FetchToken { refresh: true }]);
    s.input(Input::Token(Some("fresh".into())));
    let again = s.http();
    assert_eq!(again.token, "fresh");
    assert_eq!(again.body, req.body, "the same batch again");
    s.answer(&again, 401, r#"{"code":"unauthorized","message":"no"}"#);
    assert_eq!(s.engine.status(), SyncStatus::AuthRequired);
    assert_eq!(s.engine.poll_timeout(), None);
    assert!(!s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Http(_) | Effect::FetchToken { .. })));
    // A fresh token and syncNow: works again.
    s.input(Input::SyncNow { waiter: 1 });
    assert!(s.take().contains(&Effect::FetchToken { refresh: false }));
    s.input(Input::Token(Some("new".into())));
    s.input(Input::Pending(rows("notes", &[1])));
    let req = s.http();
    s.answer(&req, 200, &page("1", false));
    s.apply_ok();
    s.finish_pulls();
    assert!(s.take().contains(&Effect::Settled {
        waiter: 1,
        result: Ok(())
    }));
}

#[test]
fn no_token_means_local() {
    let mut s = Sim::new(true);
    s.input(Input::Start);
    s.take();
    s.input(Input::Token(None));
    assert_eq!(s.engine.status(), SyncStatus::Local);
    assert_eq!(s.engine.poll_timeout(), None, "no retry loop");
    s.input(Input::SyncNow { waiter: 3 });
    assert!(s.take().contains(&Effect::FetchToken { refresh: false }));
    s.input(Input::Token(None));
    let settled = s.expect("settled", |e| match e {
        Effect::Settled { waiter: 3, result } => Some(result.clone()),
        _ => None,
    });
    assert_eq!(settled.unwrap_err().code(), "unauthorized");
    assert_eq!(s.engine.status(), SyncStatus::Local);
}

#[test]
fn nothing_is_sent_while_the_browser_is_offline_and_what_was_written_goes_on_online() {
    let mut s = Sim::started(false);
    s.input(Input::Pending(vec![]));
    s.finish_pulls();
    assert_eq!(s.engine.status(), SyncStatus::Synced);
    s.input(Input::Online(false));
    assert_eq!(s.engine.status(), SyncStatus::Offline);
    s.effects.clear();
    s.input(Input::LocalWrite);
    // No deadline while offline: the debounced push would only fail.
    assert_eq!(s.engine.poll_timeout(), None);
    s.now += 60_000;
    s.engine.handle_timeout(s.now);
    let sent: Vec<_> = s.take();
    assert!(
        !sent
            .iter()
            .any(|e| matches!(e, Effect::ReadPending | Effect::Http(_))),
        "{sent:?}"
    );
    s.input(Input::Online(true));
    assert!(s.take().contains(&Effect::ReadPending), "pushed on online");
}

#[test]
fn network_failures_back_off_exponentially_and_online_retries_at_once() {
    let mut s = Sim::started(false);
    let mut delays = Vec::new();
    for _ in 0..8 {
        s.effects
            .retain(|e| !matches!(e, Effect::ReadPending | Effect::Status(_)));
        s.input(Input::Pending(vec![]));
        let req = s.http();
        s.input(Input::Http {
            id: req.id,
            answer: Err("down".into()),
        });
        let at = s.engine.poll_timeout().unwrap();
        delays.push(at - s.now);
        s.advance_to(at);
    }
    assert_eq!(delays, [499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999]);
    assert_eq!(s.engine.status(), SyncStatus::Syncing);
    // The browser comes back online in the middle of a wait: retried at once.
    s.effects.clear();
    s.input(Input::Pending(vec![]));
    let req = s.http();
    s.input(Input::Http {
        id: req.id,
        answer: Err("down".into()),
    });
    s.input(Input::Online(false));
    assert_eq!(s.engine.status(), SyncStatus::Offline);
    s.effects.clear();
    s.input(Input::Online(true));
    assert!(s.take().contains(&Effect::ReadPending));
    s.input(Input::Pending(vec![]));
    s.finish_pulls();
    assert_eq!(s.engine.status(), SyncStatus::Synced);
    // Success reset the schedule.
    s.input(Input::SyncNow { waiter: 1 });
    s.effects.clear();
    s.input(Input::Pending(vec![]));
    let req = s.http();
    s.input(Input::Http {
        id: req.id,
        answer: Err("down".into()),
    });
    assert_eq!(s.engine.poll_timeout().unwrap() - s.now, 499);
}

#[test]
fn a_413_halves_the_batch_and_drops_nothing() {
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(rows("notes", &[500])));
    let mut sizes = Vec::new();
    let mut acked = 0;
    while let Some(i) = s
        .effects
        .iter()
        .position(|e| matches!(e, Effect::Http(r) if r.method == HttpMethod::Post))
    {
        let Effect::Http(req) = s.effects.remove(i) else {
            unreachable!()
        };
        let n = serde_json::from_str::<Value>(req.body.as_deref().unwrap()).unwrap()["changes"]
            .as_array()
            .unwrap()
            .len();
        sizes.push(n);
        if n > 125 {
            s.answer(&req, 413, r#"{"code":"payload_too_large","message":"x"}"#);
        } else {
            s.answer(&req, 200, &page("1", false));
            acked += n;
            s.apply_ok();
        }
    }
    assert_eq!(sizes, [500, 250, 125, 125, 125, 125]);
    assert_eq!(acked, 500);
    // One change too big on its own: an error, retried later, still pending.
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(rows("notes", &[1])));
    let req = s.http();
    s.answer(&req, 413, r#"{"code":"payload_too_large","message":"x"}"#);
    assert_eq!(s.engine.status(), SyncStatus::Error);
    assert!(s.engine.poll_timeout().is_some());
}

#[test]
fn writes_are_pushed_after_the_debounce_and_sync_now_waits_for_its_own_round() {
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(vec![]));
    s.finish_pulls();
    assert_eq!(s.engine.status(), SyncStatus::Synced);
    s.take();
    s.input(Input::LocalWrite);
    s.now += 100;
    s.input(Input::LocalWrite);
    assert_eq!(
        s.engine.poll_timeout(),
        Some(1_250),
        "the first write fixes the deadline"
    );
    s.advance_to(1_249);
    assert!(s.take().is_empty());
    s.advance_to(1_250);
    assert!(s.take().contains(&Effect::ReadPending));
    // syncNow during a round settles only after a round that read the queue after the call.
    s.input(Input::SyncNow { waiter: 5 });
    s.input(Input::Pending(rows("notes", &[1])));
    let req = s.http();
    s.answer(&req, 200, &page("2", false));
    s.apply_ok();
    assert!(!s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Settled { .. })));
    assert!(
        s.take().contains(&Effect::ReadPending),
        "the next round starts at once"
    );
    s.input(Input::Pending(vec![]));
    s.finish_pulls();
    assert!(s.take().contains(&Effect::Settled {
        waiter: 5,
        result: Ok(())
    }));
    assert_eq!(s.engine.status(), SyncStatus::Synced);
}

#[test]
fn the_websocket_authenticates_pulls_on_notification_and_reconnects_with_backoff() {
    let mut s = Sim::started(true);
    assert!(s.take().contains(&Effect::WsOpen));
    s.input(Input::WsOpened);
    let auth = s.expect("auth frame", |e| match e {
        Effect::WsSend(t) => Some(t.clone()),
        _ => None,
    });
    assert_eq!(
        serde_json::from_str::<Value>(&auth).unwrap(),
        json!({"type": "auth", "token": "tok", "clientId": "client-1"})
    );
    s.input(Input::WsMessage(
        r#"{"type":"auth-ok","userId":"u"}"#.into(),
    ));
    s.input(Input::Pending(vec![]));
    s.finish_pulls();
    s.take();
    s.input(Input::WsMessage(
        r#"{"type":"sync-available","appId":"todo","table":"tasks"}"#.into(),
    ));
    s.input(Input::WsMessage(
        r#"{"type":"sync-available","appId":"todo","table":"unknown"}"#.into(),
    ));
    s.input(Input::WsMessage("garbage".into()));
    assert!(s.take().contains(&Effect::ReadPending));
    s.input(Input::Pending(vec![]));
    let req = s.http();
    assert_eq!(req.path, "/sync/todo/pull");
    s.answer(&req, 200, &page("3", false));
    s.apply_ok();
    assert!(
        s.effects.iter().all(|e| !matches!(e, Effect::Http(_))),
        "only that collection"
    );
    // The socket drops: reconnect after a backoff, and catch up on reconnect.
    s.take();
    s.input(Input::WsClosed);
    let at = s.engine.poll_timeout().unwrap();
    assert!(at <= s.now + 500);
    s.advance_to(at);
    assert!(s.take().contains(&Effect::WsOpen));
    s.input(Input::WsOpened);
    s.take();
    s.input(Input::WsMessage(
        r#"{"type":"auth-ok","userId":"u"}"#.into(),
    ));
    assert!(
        s.take().contains(&Effect::ReadPending),
        "a full round after a reconnect"
    );
    s.input(Input::Stop);
    assert!(s.take().contains(&Effect::WsClose));
}

const SOCKET_REFUSED: &str = r#"{"type":"error","code":"unauthorized","message":"expired"}"#;

/// Live, its first round done, the socket open.
fn live_and_idle() -> Sim {
    let mut s = Sim::started(true);
    s.input(Input::WsOpened);
    s.input(Input::Pending(vec![]));
    s.finish_pulls();
    s.take();
    s
}

/// The socket's token refused: a refresh is asked for, `token` given, the socket reconnects.
fn socket_refused_then_reconnected(s: &mut Sim, token: &str) {
    s.input(Input::WsMessage(SOCKET_REFUSED.into()));
    assert_eq!(s.take(), [Effect::FetchToken { refresh: true }], "{token}");
    s.input(Input::Token(Some(token.into())));
    s.input(Input::WsClosed);
    let at = s.engine.poll_timeout().unwrap();
    s.advance_to(at);
    assert!(s.take().contains(&Effect::WsOpen), "{token}");
    s.input(Input::WsOpened);
}

/// A refused token on the socket, as on a request: refreshed once, then `auth-required`, with
/// no reconnect loop; `syncNow` resumes.
#[test]
fn a_socket_whose_token_is_refused_refreshes_once_then_auth_is_required() {
    let mut s = live_and_idle();
    socket_refused_then_reconnected(&mut s, "fresh");
    let auth = s.expect("auth frame", |e| match e {
        Effect::WsSend(t) => Some(t.clone()),
        _ => None,
    });
    assert!(auth.contains("\"fresh\""), "{auth}");
    // Refused again: auth-required, the socket closed, nothing scheduled.
    s.input(Input::WsMessage(SOCKET_REFUSED.into()));
    assert_eq!(s.engine.status(), SyncStatus::AuthRequired);
    assert!(s.take().contains(&Effect::WsClose));
    s.input(Input::WsClosed);
    assert_eq!(s.engine.poll_timeout(), None, "no reconnect loop");
    assert!(s.take().is_empty());
    s.input(Input::SyncNow { waiter: 2 });
    assert!(s.take().contains(&Effect::FetchToken { refresh: false }));
}

/// Accepted after a refresh, the socket may refresh again the next time its token expires.
#[test]
fn a_socket_token_accepted_after_a_refresh_may_be_refreshed_again() {
    let mut s = live_and_idle();
    for token in ["second", "third"] {
        socket_refused_then_reconnected(&mut s, token);
        s.input(Input::WsMessage(
            r#"{"type":"auth-ok","userId":"u"}"#.into(),
        ));
        assert_ne!(s.engine.status(), SyncStatus::AuthRequired, "{token}");
        s.take();
        s.input(Input::Pending(vec![]));
        s.finish_pulls();
        s.take();
    }
}

#[test]
fn the_next_page_is_requested_while_one_is_written_and_applied_in_order() {
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(vec![]));
    let first = s.http();
    s.answer(&first, 200, &page("snapshot:9:1", true));
    let apply1 = s.apply_effect();
    let second = s.http();
    assert!(
        second
            .query
            .contains(&("since".into(), "snapshot:9:1".into())),
        "sent ahead"
    );
    // Its answer arrives before the first page is written: it waits.
    s.answer(&second, 200, &page("9", false));
    assert!(
        !s.effects.iter().any(|e| matches!(e, Effect::Apply(_))),
        "pages apply in order"
    );
    s.input(Input::Applied {
        id: apply1.id,
        result: Ok(()),
    });
    let apply2 = s.apply_ok();
    assert_eq!(apply2.cursors, [("notes".to_string(), "9".to_string())]);
    assert_eq!(
        s.engine.cursors()[&("notes".to_string(), "notes".to_string())],
        "9"
    );
}

#[test]
fn a_stale_failure_does_not_touch_the_batch_in_flight() {
    let mut s = Sim::started(false);
    s.take();
    s.input(Input::Pending(rows("notes", &[3])));
    let push = s.http();
    s.input(Input::Http {
        id: push.id + 100,
        answer: Err("old timeout".into()),
    });
    assert_eq!(s.engine.status(), SyncStatus::Syncing);
    s.answer(&push, 200, &page("1", false));
    let apply = s.apply_ok();
    assert_eq!(
        apply.pending,
        [RowEdit::Delete(1)],
        "the batch is acknowledged"
    );
}
