//! `GET /ws` (all apps) and the legacy `GET /ws/{appId}` (one app).
//!
//! Protocol: the client's first frame is `{type:"auth", token, clientId?}` (browsers can't set
//! headers on a WebSocket; `?token=` is accepted too). The server answers
//! `{type:"auth-ok", userId}` once the subscription is live, then sends
//! `{type:"sync-available", appId, table}` whenever a push by another client touches a table
//! with rows the user can see; the client then pulls. A client frame `{type:"ping"}` is
//! answered `{type:"pong"}`. Auth failures: `{type:"error", code:"unauthorized", message}` and
//! close code 4401; the same when the token expires (the client reconnects with a fresh one).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use mana_sync::protocol::{WsClientFrame, WsServerFrame};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{authenticate, ClientIp};
use crate::error::AppError;
use crate::feed::Note;
use crate::metrics::{Live, Metrics};
use crate::store::Viewer;
use crate::sync::check_app_id;
use crate::{wait_shutdown, AppState, PushEvent};

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The protocol's client frames are tiny (the largest is the auth frame with its token): a
/// bigger message or frame closes the socket instead of being buffered (the default would be
/// 64 MiB per socket, before authentication).
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
const READ_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsParams {
    token: Option<String>,
    client_id: Option<String>,
}

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

fn upgrade_error(e: axum::extract::ws::rejection::WebSocketUpgradeRejection) -> Response {
    AppError::bad_request("websocket_required", e.body_text()).into_response()
}

pub async fn ws_all(
    State(st): State<AppState>,
    ip: ClientIp,
    params: Result<Query<WsParams>, QueryRejection>,
    ws: Upgrade,
) -> Response {
    let p = params.map(|q| q.0).unwrap_or_default();
    match ws {
        Ok(ws) => capped(ws).on_upgrade(move |socket| run(st, socket, None, p, ip)),
        Err(e) => upgrade_error(e),
    }
}

pub async fn ws_app(
    State(st): State<AppState>,
    Path(app_id): Path<String>,
    ip: ClientIp,
    params: Result<Query<WsParams>, QueryRejection>,
    ws: Upgrade,
) -> Response {
    if let Err(e) = check_app_id(&app_id) {
        return e.into_response();
    }
    let p = params.map(|q| q.0).unwrap_or_default();
    match ws {
        Ok(ws) => capped(ws).on_upgrade(move |socket| run(st, socket, Some(app_id), p, ip)),
        Err(e) => upgrade_error(e),
    }
}

fn capped(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        // tungstenite zero-fills its whole read buffer before every read attempt, and a live
        // socket is polled each time the push feed wakes it: with the default 128 KiB that was
        // 128 MB of memset per push at 1,000 sockets, half the server's CPU (BENCHMARKS.md,
        // "Load harness"). Client frames are small; a bigger one grows the buffer as needed.
        .read_buffer_size(READ_BUFFER_BYTES)
        // What the server writes is small too; a reader that stops reading is dropped rather
        // than buffered for.
        .max_write_buffer_size(1024 * 1024)
}

async fn send_frame(socket: &mut WebSocket, frame: &WsServerFrame) -> bool {
    let text = serde_json::to_string(frame).expect("frames serialise");
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn reject(metrics: &Metrics, mut socket: WebSocket, code: &str, message: &str, close: u16) {
    metrics.reject(code);
    let frame = WsServerFrame::Error {
        code: code.to_owned(),
        message: message.to_owned(),
    };
    let _ = send_frame(&mut socket, &frame).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close,
            reason: code.to_owned().into(),
        })))
        .await;
}

/// Waits for the `{type:"auth"}` frame. `Err(None)`: the socket broke (or sent a message
/// over the cap), so there is no one to answer.
async fn read_auth(
    socket: &mut WebSocket,
) -> Result<(String, Option<String>), Option<&'static str>> {
    loop {
        match socket.recv().await {
            Some(Ok(Message::Text(t))) => {
                return match serde_json::from_str(t.as_str()) {
                    Ok(WsClientFrame::Auth { token, client_id }) => Ok((token, client_id)),
                    _ => Err(Some("first frame must be {type:\"auth\", token}")),
                };
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(_)) => return Err(None),
            _ => return Err(Some("connection closed before auth")),
        }
    }
}

async fn run(st: AppState, mut socket: WebSocket, app: Option<String>, p: WsParams, ip: ClientIp) {
    let (token, client_id) = match p.token.filter(|t| !t.is_empty()) {
        Some(t) => (t, p.client_id),
        None => match tokio::time::timeout(AUTH_TIMEOUT, read_auth(&mut socket)).await {
            Ok(Ok((t, c))) => (t, c.or(p.client_id)),
            Ok(Err(Some(why))) => {
                return reject(&st.metrics, socket, "unauthorized", why, 4401).await
            }
            Ok(Err(None)) => return,
            Err(_) => {
                return reject(
                    &st.metrics,
                    socket,
                    "unauthorized",
                    "no auth frame in time",
                    4401,
                )
                .await
            }
        },
    };
    let (user_id, expires) = match authenticate(&st, Some(&token), ip).await {
        Ok(c) => (c.sub, crate::auth::expiry_instant(c.exp)),
        // 4429 like HTTP's 429: the client reconnects after its backoff.
        Err(e) if e.code == "rate_limited" => {
            return reject(&st.metrics, socket, e.code, &e.message, 4429).await
        }
        Err(e) => return reject(&st.metrics, socket, e.code, &e.message, 4401).await,
    };
    let viewer = st.memberships.viewer(&user_id).await;
    // Subscribe before saying ready: every push after `auth-ok` is announced.
    let mut feed = st.feed.subscribe(&viewer);
    // Where a resync after falling behind reads from: everything up to it was committed before
    // the subscription (the client pulls that itself on connect) or announced by a resync. It
    // moves only with resyncs, never with notifications: those arrive in the order pushes
    // finished, not in log order, so the one for a lower position may be among the skipped.
    let mut seen = match st.store.head().await {
        Ok(h) => h,
        Err(e) => return store_failed(&st.metrics, socket, e).await,
    };
    let mut shutdown = st.shutdown.clone();
    let ready = WsServerFrame::AuthOk {
        user_id: viewer.user_id.clone(),
    };
    if !send_frame(&mut socket, &ready).await {
        return;
    }
    let _live = Live::new(&st.metrics.live_ws);
    // Pings keep a quiet socket inside the idle timeout and find dead peers.
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + st.sse_heartbeat,
        st.sse_heartbeat,
    );
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = wait_shutdown(&mut shutdown) => {
                let _ = socket.send(Message::Close(Some(CloseFrame {
                    code: 1001,
                    reason: "server shutting down".into(),
                }))).await;
                return;
            }
            _ = tokio::time::sleep_until(expires) => {
                // Reconnect with a fresh token.
                return reject(&st.metrics, socket, "unauthorized", "token expired", 4401).await;
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let ping = matches!(serde_json::from_str(t.as_str()), Ok(WsClientFrame::Ping));
                    if ping && !send_frame(&mut socket, &WsServerFrame::Pong).await {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            ev = feed.rx.recv() => {
                let mut committed = None;
                let tables = match ev {
                    Ok(Note::Push(ev)) => {
                        committed = Some(ev.committed);
                        tables_for(&ev, &viewer, app.as_deref(), client_id.as_deref())
                    }
                    Ok(Note::Resync) | Err(RecvError::Lagged(_)) => {
                        // Fell behind the live feed: ask the store what changed since the last
                        // resync. The head is read first, so every change up to it is in the
                        // answer; the next resync starts there.
                        st.metrics.lagged.inc();
                        tracing::debug!("websocket fell behind: resyncing from the log");
                        let resynced = async {
                            let head = st.store.head().await?;
                            let tables = st
                                .store
                                .changed_tables(viewer.clone(), seen, app.clone())
                                .await?;
                            Ok::<_, crate::store::StoreError>((head, tables))
                        };
                        match resynced.await {
                            Ok((head, tables)) => {
                                seen = head;
                                tables.into_iter().collect()
                            }
                            Err(e) => return store_failed(&st.metrics, socket, e).await,
                        }
                    }
                    Err(RecvError::Closed) => return,
                };
                let announced = !tables.is_empty();
                for (app_id, table) in tables {
                    if !send_frame(&mut socket, &WsServerFrame::SyncAvailable { app_id, table }).await {
                        return;
                    }
                }
                if let (true, Some(at)) = (announced, committed) {
                    st.metrics.fanout_seconds.observe(at.elapsed().as_secs_f64());
                }
            }
        }
    }
}

/// The store could not say what changed: close with 1011 rather than skip silently; the
/// client reconnects and pulls every collection from its own cursor.
async fn store_failed(metrics: &Metrics, socket: WebSocket, e: crate::store::StoreError) {
    tracing::error!(error = %e, "websocket resync failed");
    reject(metrics, socket, "internal", "internal server error", 1011).await
}

fn tables_for(
    ev: &PushEvent,
    viewer: &Viewer,
    app: Option<&str>,
    own_client: Option<&str>,
) -> BTreeSet<(String, String)> {
    if app.is_some_and(|a| a != ev.app_id) || own_client == Some(ev.client_id.as_str()) {
        return BTreeSet::new();
    }
    ev.changes
        .iter()
        .filter(|c| viewer.sees(&c.author, c.space_id.as_deref()))
        .map(|c| (ev.app_id.clone(), c.table.clone()))
        .collect()
}
