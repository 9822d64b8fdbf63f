//! Live fan-out across instances: every push `NOTIFY`s (at commit, see push.rs), and each
//! instance `LISTEN`s and hands what it hears to its own in-process hub, which wakes its SSE
//! and WebSocket subscribers like a push of its own.
//!
//! A notification carries ids only — the app, the pushing client, and per (table, author,
//! space) the greatest sequence number — never a row: a stream only needs to know it concerns
//! it, then reads everything after its cursor from the database. PostgreSQL caps a payload
//! at 8000 bytes; a push whose ids don't fit says only which part of the log it wrote
//! (`from`/`to`), and the listener reads the ids of that range back ([`mana_log_groups`]).
//! The same read catches up after the listening connection was lost.
//!
//! [`mana_log_groups`]: ../../../migrations/postgres/0001_init.sql

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{db, PgStore};
use crate::store::{LoggedChange, StoreError};
use crate::PushEvent;

pub const NOTIFY_CHANNEL: &str = "mana_sync";
/// Below PostgreSQL's 8000 bytes.
const MAX_PAYLOAD: usize = 7900;

/// One appended change, as announced.
#[derive(Debug, Clone)]
pub(crate) struct Announced {
    pub table: String,
    pub author: String,
    pub space_id: Option<String>,
    pub seq: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The announcing instance (it woke its own streams already).
    i: String,
    a: String,
    c: String,
    /// `(table, author, space, greatest seq)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    g: Vec<(String, String, Option<String>, i64)>,
    /// When `g` would not fit: the log range `(from, to]` this push wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<(i64, i64)>,
}

/// A random id per process: an instance ignores its own notifications.
fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

/// The notification payload(s) of one push: one, within [`MAX_PAYLOAD`] bytes.
pub(crate) fn payloads(app_id: &str, client_id: &str, rows: &[Announced]) -> Vec<String> {
    let mut groups: BTreeMap<(&str, &str, Option<&str>), i64> = BTreeMap::new();
    for r in rows {
        let seq = groups
            .entry((&r.table, &r.author, r.space_id.as_deref()))
            .or_insert(r.seq);
        *seq = (*seq).max(r.seq);
    }
    let mut p = Payload {
        i: instance_id().to_owned(),
        a: app_id.to_owned(),
        c: client_id.to_owned(),
        g: groups
            .into_iter()
            .map(|((t, a, s), seq)| (t.to_owned(), a.to_owned(), s.map(str::to_owned), seq))
            .collect(),
        r: None,
    };
    let text = serde_json::to_string(&p).unwrap_or_default();
    if text.len() <= MAX_PAYLOAD {
        return vec![text];
    }
    let from = rows.iter().map(|r| r.seq).min().unwrap_or(0) - 1;
    let to = rows.iter().map(|r| r.seq).max().unwrap_or(0);
    p.g.clear();
    p.r = Some((from, to));
    // app and client ids are bounded (200 bytes; a client id is the client's), but to be
    // sure: without them the listener reads them back with the range.
    let text = serde_json::to_string(&p).unwrap_or_default();
    if text.len() <= MAX_PAYLOAD {
        return vec![text];
    }
    p.a.clear();
    p.c.clear();
    vec![serde_json::to_string(&p).unwrap_or_default()]
}

/// Listens until shutdown, re-connecting (and catching up) when the connection drops.
pub fn listen(
    store: PgStore,
    events: broadcast::Sender<Arc<PushEvent>>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The head when the last connection began listening: what a new one catches up from.
        let mut seen: Option<i64> = None;
        loop {
            tokio::select! {
                r = listen_once(&store, &events, &mut seen) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    }
                }
                _ = crate::wait_shutdown(&mut shutdown) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = crate::wait_shutdown(&mut shutdown) => return,
            }
        }
    })
}

async fn listen_once(
    store: &PgStore,
    events: &broadcast::Sender<Arc<PushEvent>>,
    seen: &mut Option<i64>,
) -> Result<(), StoreError> {
    let (client, mut conn) = store.config().connect(NoTls).await.map_err(db)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the client's queries to make progress, and it is
    // where notifications arrive.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed");
                    return;
                }
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await
            .map_err(db)?;
        let head: i64 = client
            .query_one("SELECT seq FROM log_head", &[])
            .await
            .map_err(db)?
            .get(0);
        // Anything committed while no connection listened.
        if let Some(from) = seen.filter(|from| *from < head) {
            for ev in read_range(&client, from, head).await? {
                let _ = events.send(Arc::new(ev));
            }
        }
        *seen = Some(head);
        while let Some(text) = rx.recv().await {
            let Ok(p) = serde_json::from_str::<Payload>(&text) else {
                tracing::warn!("ignoring a malformed notification");
                continue;
            };
            let newest = p.g.iter().map(|g| g.3).chain(p.r.map(|r| r.1)).max();
            if let Some(n) = newest {
                *seen = Some(seen.unwrap_or(0).max(n));
            }
            if p.i == instance_id() {
                continue;
            }
            if let Some((from, to)) = p.r {
                for ev in read_range(&client, from, to).await? {
                    let _ = events.send(Arc::new(ev));
                }
                continue;
            }
            let changes =
                p.g.into_iter()
                    .map(|(table, author, space_id, seq)| LoggedChange {
                        table,
                        // Streams re-read the changes after their cursor; the record ids stay
                        // out of the payload.
                        id: String::new(),
                        seq,
                        author,
                        space_id,
                    })
                    .collect();
            let _ = events.send(Arc::new(PushEvent {
                committed: std::time::Instant::now(),
                app_id: p.a,
                client_id: p.c,
                changes,
            }));
        }
        Ok(())
    }
    .await;
    driver.abort();
    result
}

/// The pushes of a log range `(from, to]`, one event per app and client.
async fn read_range(
    client: &tokio_postgres::Client,
    from: i64,
    to: i64,
) -> Result<Vec<PushEvent>, StoreError> {
    let rows = client
        .query(
            "SELECT app_id, client_id, tbl, author, space_id, seq FROM mana_log_groups($1, $2)",
            &[&from, &to],
        )
        .await
        .map_err(db)?;
    let mut by_push: BTreeMap<(String, String), Vec<LoggedChange>> = BTreeMap::new();
    for r in rows {
        by_push
            .entry((r.get(0), r.get(1)))
            .or_default()
            .push(LoggedChange {
                table: r.get(2),
                id: String::new(),
                seq: r.get(5),
                author: r.get(3),
                space_id: r.get(4),
            });
    }
    let now = std::time::Instant::now();
    Ok(by_push
        .into_iter()
        .map(|((app_id, client_id), changes)| PushEvent {
            committed: now,
            app_id,
            client_id,
            changes,
        })
        .collect())
}
