//! `GET /sync/{appId}/stream`: Server-Sent Events.
//!
//! Every event is a page in the shape of a pull answer — `data: {serverChanges, syncedUntil,
//! hasMore}` with `id: <syncedUntil>` — so one client parser serves pull, push and stream, and
//! `Last-Event-ID` resumes exactly. First the backlog since `since` (or the current state when
//! absent: a first sync), page by page; then one event per push that concerns the subscriber.
//! `: heartbeat` comments every 30 s keep proxies from closing the connection.
//!
//! Live events are read from the store, not from the notification itself: the notification
//! only wakes the stream, which then reads everything after its cursor. Pushes that commit in
//! one order but notify in another can therefore never make a stream skip a change.
//!
//! `EventSource` can't send headers, so the token may also come as `?token=`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use mana_sync::protocol::PullResponse;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::error::AppError;
use crate::feed::{Note, Subscription};
use crate::metrics::{Live, Metrics};
use crate::store::{PageQuery, Store};
use crate::sync::{check_app_id, parse_collections, parse_cursor, DEFAULT_LIMIT};
use crate::{wait_shutdown, AppState, PushEvent};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamParams {
    collection: Option<String>,
    collections: Option<String>,
    since: Option<String>,
    token: Option<String>,
    /// The subscriber's own client id: its own pushes are not echoed back.
    client_id: Option<String>,
}

struct SseState {
    store: Arc<dyn Store>,
    query: PageQuery,
    feed: Subscription,
    shutdown: watch::Receiver<bool>,
    /// The stream ends when its token expires; the client reconnects with a fresh one.
    expires: tokio::time::Instant,
    catching_up: bool,
    first: bool,
    /// When the push that woke the stream committed (for the fan-out latency).
    woken_by: Option<std::time::Instant>,
    metrics: Arc<Metrics>,
    _live: Live,
}

pub async fn sse(
    State(st): State<AppState>,
    Path(app_id): Path<String>,
    ip: crate::auth::ClientIp,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    check_app_id(&app_id)?;
    let Query(p) = params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .or(p.token)
        .filter(|t| !t.is_empty());
    let claims = crate::auth::authenticate(&st, token.as_deref(), ip).await?;
    st.billing.check(&claims.sub, &app_id).await?;
    let viewer = st.memberships.viewer(&claims.sub).await;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let since = parse_cursor(last_event_id.as_deref().or(p.since.as_deref()))?;
    // Subscribe before reading the backlog, so nothing committed in between is missed.
    let feed = st.feed.subscribe(&viewer);
    let state = SseState {
        store: st.store.clone(),
        query: PageQuery {
            app_id,
            viewer,
            collections: parse_collections(p.collection.as_deref(), p.collections.as_deref()),
            since,
            limit: DEFAULT_LIMIT,
            exclude_client: p.client_id.filter(|c| !c.is_empty()),
        },
        feed,
        shutdown: st.shutdown.clone(),
        expires: crate::auth::expiry_instant(claims.exp),
        catching_up: true,
        first: true,
        woken_by: None,
        metrics: st.metrics.clone(),
        _live: Live::new(&st.metrics.live_sse),
    };
    let stream = futures_util::stream::unfold(state, next_event);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(st.sse_heartbeat)
            .text("heartbeat"),
    ))
}

impl SseState {
    fn concerns(&self, ev: &PushEvent) -> bool {
        let q = &self.query;
        ev.app_id == q.app_id
            && q.exclude_client.as_deref() != Some(ev.client_id.as_str())
            && ev.changes.iter().any(|c| {
                q.viewer.sees(&c.author, c.space_id.as_deref())
                    && q.collections
                        .as_ref()
                        .is_none_or(|cols| cols.contains(&c.table))
            })
    }
}

async fn next_event(mut s: SseState) -> Option<(Result<Event, Infallible>, SseState)> {
    loop {
        if *s.shutdown.borrow() {
            return None;
        }
        if s.catching_up {
            match s.store.page(s.query.clone()).await {
                Ok(page) => {
                    s.query.since = Some(page.next);
                    s.catching_up = page.has_more;
                    if page.changes.is_empty() && !s.first {
                        // What woke the stream was sent already: it is no fan-out to time.
                        s.woken_by = None;
                        continue;
                    }
                    s.first = false;
                    if let Some(at) = s.woken_by.take() {
                        s.metrics.fanout_seconds.observe(at.elapsed().as_secs_f64());
                    }
                    let cursor = page.next.to_string();
                    let body = PullResponse {
                        server_changes: page.changes,
                        synced_until: cursor.clone(),
                        has_more: page.has_more,
                    };
                    let ev = Event::default()
                        .id(cursor)
                        .json_data(&body)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable page"));
                    return Some((Ok(ev), s));
                }
                Err(e) => {
                    tracing::error!(error = %e, "stream read failed");
                    let ev = Event::default()
                        .event("error")
                        .data(r#"{"code":"internal","message":"internal server error"}"#);
                    // End the stream after this event: the client reconnects with its cursor.
                    s.shutdown = watch::channel(true).1;
                    return Some((Ok(ev), s));
                }
            }
        }
        tokio::select! {
            _ = wait_shutdown(&mut s.shutdown) => return None,
            _ = tokio::time::sleep_until(s.expires) => return None,
            r = s.feed.rx.recv() => match r {
                Ok(Note::Push(ev)) => {
                    if s.concerns(&ev) {
                        s.catching_up = true;
                        s.woken_by.get_or_insert(ev.committed);
                    }
                }
                Ok(Note::Resync) | Err(RecvError::Lagged(_)) => {
                    // Fell behind the live feed: the page read from the cursor has it all.
                    s.metrics.lagged.inc();
                    tracing::debug!("SSE stream fell behind: resyncing from its cursor");
                    s.catching_up = true;
                }
                Err(RecvError::Closed) => return None,
            },
        }
    }
}
