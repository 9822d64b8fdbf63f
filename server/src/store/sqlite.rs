//! SQLite implementation of [`Store`] (rusqlite, SQLite bundled).
//!
//! Why rusqlite rather than sqlx: SQLite is an in-process library whose calls are short and
//! blocking, so the natural shape is a synchronous connection used from `spawn_blocking`.
//! rusqlite gives prepared-statement caching, explicit `BEGIN IMMEDIATE` transactions and the
//! `bundled` SQLite (no system library, same version everywhere) with no async shim and no
//! compile-time query checking against a live database. The PostgreSQL backend will be a
//! separate implementation of the same trait.
//!
//! Concurrency: SQLite has one writer at a time anyway, so there is exactly **one writer
//! connection** behind a mutex (pushes are serialised; each push is one `BEGIN IMMEDIATE`
//! transaction, which also makes sequence numbers commit in order) and a few **reader
//! connections** (WAL lets them read a consistent snapshot while the writer writes).
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so every commit fsyncs the WAL
//! before `push` returns: an acknowledged push survives a process crash *and* a power loss.
//! (`NORMAL` would survive a process crash but may lose the last commits on power loss, which
//! docs/protocol.md, "an acknowledged change survives a server crash", does not allow.) The
//! cost is one fsync per push, amortised over up to 5000 changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mana_sync::clock::Hlc;
use mana_sync::merge::{FieldState, RecordState};
use mana_sync::protocol::{FieldChange, FIELD_ID};
use mana_sync::{Change, Op};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use super::{
    Cursor, Loaded, LogRow, Page, PageQuery, PushScope, PushTx, RecordWrite, Store, StoreError,
    StoredRecord, Touched, Viewer,
};

/// Schema migrations, applied in order; `PRAGMA user_version` counts the applied ones. Each is
/// also written idempotently (`IF NOT EXISTS`), so re-running one is harmless.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE IF NOT EXISTS changes (
    seq            INTEGER PRIMARY KEY,   -- the sync cursor
    event_id       TEXT    NOT NULL UNIQUE,
    app_id         TEXT    NOT NULL,
    tbl            TEXT    NOT NULL,
    record_id      TEXT    NOT NULL,
    author         TEXT    NOT NULL,      -- user id (JWT sub) of the writer
    space_id       TEXT,                  -- NULL = the author's personal space
    op             TEXT    NOT NULL,
    data           TEXT,                  -- JSON object (insert)
    fields         TEXT,                  -- JSON { field: { value, updatedAt } } (update)
    updated_at     TEXT,
    deleted_at     TEXT,
    actor          TEXT,                  -- JSON, stored untouched
    schema_version INTEGER NOT NULL,
    client_id      TEXT    NOT NULL,
    created_at     INTEGER NOT NULL       -- unix millis
);
CREATE INDEX IF NOT EXISTS changes_app_seq ON changes (app_id, seq);
CREATE TABLE IF NOT EXISTS records (
    rid            INTEGER PRIMARY KEY,   -- position in a first-sync snapshot
    app_id         TEXT    NOT NULL,
    tbl            TEXT    NOT NULL,
    record_id      TEXT    NOT NULL,
    author         TEXT    NOT NULL,
    space_id       TEXT,
    state          TEXT    NOT NULL,      -- JSON { field: { v, at, a? } }: merged LWW state
    updated_at     TEXT,                  -- greatest HLC ever applied
    schema_version INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    UNIQUE (app_id, tbl, record_id)
);
CREATE INDEX IF NOT EXISTS records_app_rid ON records (app_id, rid);
"#,
    // A page of the log scans the app's changes after the cursor and keeps the viewer's: with
    // the visibility columns in the index, the rows of other users (their payloads, up to
    // megabytes) are never read. Replaces `changes_app_seq`, its prefix.
    r#"
CREATE INDEX IF NOT EXISTS changes_app_seq_visible
    ON changes (app_id, seq, author, space_id, client_id, tbl);
DROP INDEX IF EXISTS changes_app_seq;
"#,
];

/// Opens (creating if needed) a database file with the server's pragmas and runs the
/// migrations. Public so that the benchmark's raw baseline uses the identical set-up.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&conn)?;
    Ok(conn)
}

/// WAL pages after which a commit checkpoints by itself: only a backstop, for when the
/// background checkpointer can't keep up (`checkpointer`).
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 10_000;
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Copies the WAL back into the database file every `CHECKPOINT_EVERY`, on a connection of
/// its own. Left to SQLite, the commit that crosses 1,000 WAL pages does that copy and its
/// fsync itself, holding the one writer, and every push queued behind it waits (the load
/// harness's p99, BENCHMARKS.md). A `PASSIVE` checkpoint never blocks the writer. Stops when
/// the store is dropped.
fn checkpointer(path: &Path, store: std::sync::Weak<Inner>) -> Result<(), StoreError> {
    let conn = Connection::open(path).map_err(internal)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(internal)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while store.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "background checkpoint failed");
                }
            }
        })
        .map(drop)
        .map_err(internal)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The one writer. A tokio mutex: a push holds it across the awaits of its transaction.
    writer: Arc<tokio::sync::Mutex<Connection>>,
    /// Empty for an in-memory database (reads then go through the writer).
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl SqliteStore {
    /// Opens `path` (`:memory:` for a private in-memory database).
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteStore, StoreError> {
        let path = path.into();
        let memory = path.as_os_str() == ":memory:";
        let writer = if memory {
            let c = Connection::open_in_memory().map_err(internal)?;
            migrate(&c).map_err(internal)?;
            c
        } else {
            let w = open_writer(&path).map_err(internal)?;
            w.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
                .map_err(internal)?;
            w
        };
        let mut readers = Vec::new();
        if !memory {
            for _ in 0..4 {
                let c = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(internal)?;
                c.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(internal)?;
                c.set_prepared_statement_cache_capacity(32);
                readers.push(Mutex::new(c));
            }
        }
        let inner = Arc::new(Inner {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers,
            next_reader: AtomicUsize::new(0),
        });
        if !memory {
            checkpointer(&path, Arc::downgrade(&inner))?;
        }
        Ok(SqliteStore { inner })
    }

    /// Parses `DATABASE_URL`: `sqlite://path`, `sqlite:path`, `sqlite::memory:` or a plain
    /// path.
    pub fn path_from_url(url: &str) -> PathBuf {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        PathBuf::from(rest)
    }
}

impl Inner {
    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        if self.readers.is_empty() {
            // In memory: read through the writer, never inside a push's transaction.
            let mut c = self.writer.blocking_lock();
            settle(&c);
            return f(&mut c);
        }
        // A free connection first: one may be busy for a while with a big page (a slow
        // reader catching up), and a stream's small read must not queue behind it.
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            match self.readers[(start + k) % n].try_lock() {
                Ok(mut c) => return f(&mut c),
                Err(std::sync::TryLockError::Poisoned(p)) => return f(&mut p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let mut c = lock(&self.readers[start % n]);
        f(&mut c)
    }
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves no half-done transaction behind (rusqlite rolls
    // back on drop), so a poisoned connection is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// An optional JSON column: the value's JSON text, or NULL.
fn json_column<T: serde::Serialize>(v: &Option<T>) -> Result<Option<String>, StoreError> {
    v.as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(internal)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("storage task failed: {e}")))?
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin_push(&self, scope: PushScope) -> Result<Box<dyn PushTx>, StoreError> {
        let conn = self.inner.writer.clone().lock_owned().await;
        let mut tx = SqlitePushTx {
            conn: Some(conn),
            scope: Arc::new(scope),
            created_at: now_millis(),
        };
        tx.run(|conn, _| {
            settle(conn);
            conn.execute_batch("BEGIN IMMEDIATE").map_err(internal)
        })
        .await?;
        Ok(Box::new(tx))
    }

    async fn page(&self, q: PageQuery) -> Result<Page, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.with_reader(|c| page_tx(c, &q))).await
    }

    async fn head(&self) -> Result<i64, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner.with_reader(|c| {
                c.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                    r.get(0)
                })
                .map_err(internal)
            })
        })
        .await
    }

    async fn changed_tables(
        &self,
        viewer: Viewer,
        after: i64,
        app_id: Option<String>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner.with_reader(|c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT DISTINCT app_id, tbl FROM changes
                         WHERE seq > ?1 AND (?2 IS NULL OR app_id = ?2)
                           AND (author = ?3 OR space_id IN (SELECT value FROM json_each(?4)))",
                    )
                    .map_err(internal)?;
                let spaces = json_list(viewer.spaces.iter().cloned());
                let rows = stmt
                    .query_map(params![after, app_id, viewer.user_id, spaces], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(internal)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(internal)
            })
        })
        .await
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Rolls back a transaction a dropped [`SqlitePushTx`] left open on the writer. Run by whoever
/// takes the writer next, so that nothing uncommitted outlives its push.
fn settle(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back an abandoned push failed");
        }
    }
}

/// One push's `BEGIN IMMEDIATE` transaction on the writer connection, which it holds (so
/// pushes are serialised) until committed or dropped. Each call runs on the blocking pool
/// with the connection moved in and back out.
struct SqlitePushTx {
    /// `None` only while a call is running (or after one was cancelled).
    conn: Option<OwnedMutexGuard<Connection>>,
    scope: Arc<PushScope>,
    created_at: i64,
}

impl SqlitePushTx {
    async fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Connection, &PushScope) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| internal("push transaction used after a failed call"))?;
        let scope = self.scope.clone();
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let r = f(&conn, &scope);
            (conn, r)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("storage task failed: {e}")))?;
        self.conn = Some(conn);
        result
    }
}

impl Drop for SqlitePushTx {
    fn drop(&mut self) {
        // Not committed: roll back now, off the async thread when there is one (the next
        // taker of the writer would do it anyway, see `settle`).
        if let Some(conn) = self.conn.take().filter(|c| !c.is_autocommit()) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || settle(&conn))),
                Err(_) => settle(&conn),
            }
        }
    }
}

#[async_trait]
impl PushTx for SqlitePushTx {
    async fn load(&mut self, touched: Touched) -> Result<Loaded, StoreError> {
        self.run(move |conn, scope| {
            let mut out = Loaded::default();
            let mut record = conn
                .prepare_cached(
                    "SELECT author, space_id, state, updated_at, schema_version
                     FROM records WHERE app_id = ?1 AND tbl = ?2 AND record_id = ?3",
                )
                .map_err(internal)?;
            out.records.reserve(touched.records.len());
            for key in touched.records {
                let row = record
                    .query_row(params![scope.app_id, key.0, key.1], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, u32>(4)?,
                        ))
                    })
                    .optional()
                    .map_err(internal)?;
                if let Some((author, space_id, state, updated_at, schema_version)) = row {
                    let stored = StoredRecord {
                        author,
                        space_id,
                        state: decode_state(&state)?,
                        updated_at,
                        schema_version,
                    };
                    out.records.insert(key, stored);
                }
            }
            let mut event = conn
                .prepare_cached("SELECT 1 FROM changes WHERE event_id = ?1")
                .map_err(internal)?;
            for id in touched.event_ids {
                if event.exists(params![id]).map_err(internal)? {
                    out.known_event_ids.insert(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn append(&mut self, rows: Vec<LogRow>) -> Result<Vec<i64>, StoreError> {
        let created_at = self.created_at;
        self.run(move |conn, scope| {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO changes (event_id, app_id, tbl, record_id, author, space_id, op,
                       data, fields, updated_at, deleted_at, actor, schema_version, client_id,
                       created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(internal)?;
            let mut seqs = Vec::with_capacity(rows.len());
            for row in &rows {
                let c = &row.change;
                insert
                    .execute(params![
                        c.event_id,
                        scope.app_id,
                        c.table,
                        c.id,
                        row.author,
                        row.space_id,
                        c.op.as_str(),
                        json_column(&c.data)?,
                        json_column(&c.fields)?,
                        c.updated_at,
                        c.deleted_at,
                        json_column(&c.actor)?,
                        c.schema_version(),
                        scope.client_id,
                        created_at,
                    ])
                    .map_err(internal)?;
                seqs.push(conn.last_insert_rowid());
            }
            Ok(seqs)
        })
        .await
    }

    async fn upsert(&mut self, records: Vec<RecordWrite>) -> Result<(), StoreError> {
        self.run(move |conn, scope| {
            let mut upsert = conn
                .prepare_cached(
                    "INSERT INTO records (app_id, tbl, record_id, author, space_id, state,
                       updated_at, schema_version, last_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (app_id, tbl, record_id) DO UPDATE SET
                       state = excluded.state, updated_at = excluded.updated_at,
                       schema_version = excluded.schema_version, last_seq = excluded.last_seq",
                )
                .map_err(internal)?;
            for r in &records {
                upsert
                    .execute(params![
                        scope.app_id,
                        r.table,
                        r.id,
                        r.author,
                        r.space_id,
                        encode_state(&r.state)?,
                        r.updated_at,
                        r.schema_version,
                        r.last_seq,
                    ])
                    .map_err(internal)?;
            }
            Ok(())
        })
        .await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.run(|conn, _| conn.execute_batch("COMMIT").map_err(internal))
            .await?;
        // Release the writer now (a failed COMMIT leaves the rollback to `drop`).
        self.conn = None;
        Ok(())
    }
}

/// `{ field: { v, at, a? } }`, written straight into a string (this runs once per record
/// per push).
pub(crate) fn encode_state(state: &RecordState) -> Result<String, StoreError> {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 * state.fields.len() + 2);
    out.push('{');
    for (i, (name, f)) in state.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).map_err(internal)?);
        out.push_str(":{\"v\":");
        out.push_str(&serde_json::to_string(&f.value).map_err(internal)?);
        // An HLC string is ASCII digits, letters, '-', ':', '.': no escaping needed.
        let _ = write!(out, ",\"at\":\"{}\"", f.at);
        if let Some(a) = &f.actor {
            out.push_str(",\"a\":");
            out.push_str(&serde_json::to_string(a).map_err(internal)?);
        }
        out.push('}');
    }
    out.push('}');
    Ok(out)
}

pub(crate) fn decode_state(s: &str) -> Result<RecordState, StoreError> {
    let m: Map<String, Value> =
        serde_json::from_str(s).map_err(|e| internal(format!("corrupt record state: {e}")))?;
    let mut state = RecordState::default();
    for (name, e) in m {
        let at = e
            .get("at")
            .and_then(Value::as_str)
            .and_then(|s| Hlc::parse(s).ok())
            .ok_or_else(|| internal(format!("corrupt record state: field {name} has no HLC")))?;
        state.fields.insert(
            name,
            FieldState {
                value: e.get("v").cloned().unwrap_or(Value::Null),
                at,
                actor: e.get("a").cloned(),
            },
        );
    }
    Ok(state)
}

fn json_list(items: impl IntoIterator<Item = impl Into<String>>) -> String {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect()).to_string()
}

fn page_tx(conn: &mut Connection, q: &PageQuery) -> Result<Page, StoreError> {
    let tx = conn.transaction().map_err(internal)?;
    let head: i64 = tx
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })
        .map_err(internal)?;
    let limit = q.limit.clamp(1, 100_000);
    let cols = q.collections.as_ref().map(|c| json_list(c.iter().cloned()));
    let spaces = json_list(q.viewer.spaces.iter().cloned());
    let page = match q.since {
        // A cursor from the future (another or a reset server): serve a full resync.
        Some(Cursor::Log(since)) if since <= head => {
            log_page(&tx, q, since, head, limit, cols.as_deref(), &spaces)?
        }
        Some(Cursor::Snapshot { upto, after }) if upto <= head => {
            snapshot_page(&tx, q, upto, after, head, limit, cols.as_deref(), &spaces)?
        }
        _ => snapshot_page(&tx, q, head, 0, head, limit, cols.as_deref(), &spaces)?,
    };
    tx.finish().map_err(internal)?;
    Ok(page)
}

fn log_page(
    tx: &rusqlite::Transaction<'_>,
    q: &PageQuery,
    since: i64,
    head: i64,
    limit: usize,
    cols: Option<&str>,
    spaces: &str,
) -> Result<Page, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT seq, event_id, tbl, record_id, op, data, fields, updated_at, deleted_at,
                    actor, schema_version, space_id
             FROM changes
             WHERE app_id = ?1 AND seq > ?2
               AND (?3 IS NULL OR tbl IN (SELECT value FROM json_each(?3)))
               AND (author = ?4 OR space_id IN (SELECT value FROM json_each(?5)))
               AND (?6 IS NULL OR client_id <> ?6)
             ORDER BY seq LIMIT ?7",
        )
        .map_err(internal)?;
    let mut rows = stmt
        .query(params![
            q.app_id,
            since,
            cols,
            q.viewer.user_id,
            spaces,
            q.exclude_client,
            (limit + 1) as i64
        ])
        .map_err(internal)?;
    let mut changes = Vec::with_capacity(limit.min(1024));
    let mut last_seq = since;
    let mut has_more = false;
    while let Some(r) = rows.next().map_err(internal)? {
        if changes.len() == limit {
            has_more = true;
            break;
        }
        let seq: i64 = r.get(0).map_err(internal)?;
        let json = |i: usize| -> Result<Option<String>, StoreError> { r.get(i).map_err(internal) };
        let parse_err = |e: serde_json::Error| internal(format!("corrupt change {seq}: {e}"));
        let op = Op::parse(r.get_ref(4).map_err(internal)?.as_str().unwrap_or(""));
        changes.push(Change {
            event_id: r.get(1).map_err(internal)?,
            table: r.get(2).map_err(internal)?,
            id: r.get(3).map_err(internal)?,
            op,
            data: json(5)?
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(parse_err)?,
            fields: json(6)?
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(parse_err)?,
            updated_at: r.get(7).map_err(internal)?,
            deleted_at: r.get(8).map_err(internal)?,
            actor: json(9)?
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(parse_err)?,
            schema_version: Some(r.get(10).map_err(internal)?),
            space_id: r.get(11).map_err(internal)?,
            seq: Some(seq.to_string()),
        });
        last_seq = seq;
    }
    let next = if has_more { last_seq } else { head.max(since) };
    Ok(Page {
        changes,
        next: Cursor::Log(next),
        has_more,
    })
}

#[allow(clippy::too_many_arguments)]
fn snapshot_page(
    tx: &rusqlite::Transaction<'_>,
    q: &PageQuery,
    upto: i64,
    after: i64,
    head: i64,
    limit: usize,
    cols: Option<&str>,
    spaces: &str,
) -> Result<Page, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT rid, tbl, record_id, space_id, state, updated_at, schema_version, last_seq
             FROM records
             WHERE app_id = ?1 AND rid > ?2
               AND (?3 IS NULL OR tbl IN (SELECT value FROM json_each(?3)))
               AND (author = ?4 OR space_id IN (SELECT value FROM json_each(?5)))
             ORDER BY rid LIMIT ?6",
        )
        .map_err(internal)?;
    let mut rows = stmt
        .query(params![
            q.app_id,
            after,
            cols,
            q.viewer.user_id,
            spaces,
            (limit + 1) as i64
        ])
        .map_err(internal)?;
    let mut changes = Vec::with_capacity(limit.min(1024));
    let mut last_rid = after;
    let mut has_more = false;
    // The limit counts records: a record may travel as several changes (one per actor).
    let mut records = 0;
    while let Some(r) = rows.next().map_err(internal)? {
        if records == limit {
            has_more = true;
            break;
        }
        records += 1;
        let rid: i64 = r.get(0).map_err(internal)?;
        let table: String = r.get(1).map_err(internal)?;
        let id: String = r.get(2).map_err(internal)?;
        let space_id: Option<String> = r.get(3).map_err(internal)?;
        let state = decode_state(&r.get::<_, String>(4).map_err(internal)?)?;
        let updated_at: Option<String> = r.get(5).map_err(internal)?;
        let schema_version: u32 = r.get(6).map_err(internal)?;
        let last_seq: i64 = r.get(7).map_err(internal)?;
        changes.extend(snapshot_changes(
            &q.app_id,
            table,
            id,
            space_id,
            &state,
            updated_at,
            schema_version,
            last_seq,
        ));
        last_rid = rid;
    }
    if has_more {
        return Ok(Page {
            changes,
            next: Cursor::Snapshot {
                upto,
                after: last_rid,
            },
            has_more,
        });
    }
    // Snapshot done: continue from the log position it was taken at. Changes committed while
    // it was paged are still to come, so say so.
    Ok(Page {
        changes,
        next: Cursor::Log(upto),
        has_more: upto < head,
    })
}

/// The current state of one record as changes (docs/protocol.md "Pull", first sync). A
/// record whose fields were all written by one write (same HLC and actor) is one `insert` at
/// that HLC; any other is one `update` per actor whose `fields` carry every field with its own
/// HLC (an `insert` has one timestamp, which would make old fields beat concurrent local
/// edits; and a change has one actor, so fields of different actors travel apart). Tombstones
/// also travel as a top-level `deletedAt`. `eventId`s are deterministic UUIDs (v8) of the
/// record, its last sequence number and the part; `seq` is that sequence number.
#[allow(clippy::too_many_arguments)]
pub(crate) fn snapshot_changes(
    app_id: &str,
    table: String,
    id: String,
    space_id: Option<String>,
    state: &RecordState,
    updated_at: Option<String>,
    schema_version: u32,
    last_seq: i64,
) -> Vec<Change> {
    let event_id = |part: usize| {
        let mut h = Sha256::new();
        for p in [app_id, &table, &id, &last_seq.to_string()] {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        if part > 0 {
            // Part 0 keeps the id earlier servers gave the whole record.
            h.update((part as u64).to_le_bytes());
        }
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    };
    let base = |part: usize, op: Op| Change {
        event_id: event_id(part),
        table: table.clone(),
        id: id.clone(),
        op,
        data: None,
        fields: None,
        deleted_at: state.deleted_at().map(str::to_owned),
        updated_at: None,
        schema_version: Some(schema_version),
        actor: None,
        space_id: space_id.clone(),
        seq: Some(last_seq.to_string()),
    };
    let Some(first) = state.fields.values().next() else {
        // An insert of an empty record: nothing but its id and timestamp.
        let mut change = base(0, Op::Insert);
        let mut data = Map::new();
        data.insert(FIELD_ID.into(), Value::String(id.clone()));
        change.data = Some(data);
        change.updated_at = updated_at;
        return vec![change];
    };
    if state
        .fields
        .values()
        .all(|f| f.at == first.at && f.actor == first.actor)
    {
        let mut change = base(0, Op::Insert);
        let mut data = Map::with_capacity(state.fields.len() + 1);
        data.insert(FIELD_ID.into(), Value::String(id.clone()));
        for (name, f) in &state.fields {
            data.insert(name.clone(), f.value.clone());
        }
        change.data = Some(data);
        change.updated_at = Some(first.at.to_string());
        change.actor = first.actor.clone();
        return vec![change];
    }
    let mut by_actor: Vec<(Option<Value>, BTreeMap<String, FieldChange>)> = Vec::new();
    for (name, f) in &state.fields {
        let field = FieldChange {
            value: f.value.clone(),
            updated_at: f.at.to_string(),
            base: None,
        };
        match by_actor.iter_mut().find(|(a, _)| *a == f.actor) {
            Some((_, fields)) => {
                fields.insert(name.clone(), field);
            }
            None => by_actor.push((f.actor.clone(), BTreeMap::from([(name.clone(), field)]))),
        }
    }
    by_actor
        .into_iter()
        .enumerate()
        .map(|(part, (actor, fields))| {
            let mut change = base(part, Op::Update);
            change.updated_at = fields.values().map(|f| f.updated_at.clone()).max();
            change.actor = actor;
            change.fields = Some(fields);
            change
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PushOutcome, PushRequest, Viewer};
    use mana_sync::merge::apply;
    use mana_sync::protocol::ValidChange;
    use serde_json::json;

    fn hlc(ms: u64, node: u64) -> String {
        Hlc::new(ms, 0, node).unwrap().to_string()
    }

    fn ch(v: Value) -> Change {
        serde_json::from_value(v).unwrap()
    }

    fn eid(n: u32) -> String {
        format!("0190a6f0-0000-7000-8000-{n:012}")
    }

    fn push(
        store: &SqliteStore,
        user: &str,
        changes: Vec<Change>,
    ) -> Result<PushOutcome, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(crate::store::push(
            store,
            PushRequest {
                app_id: "notes".into(),
                viewer: Viewer::personal(user),
                client_id: format!("{user}-c"),
                changes: changes
                    .into_iter()
                    .map(|c| ValidChange::new(c).unwrap())
                    .collect(),
            },
        ))
    }

    fn page(store: &SqliteStore, user: &str, since: Option<Cursor>, limit: usize) -> Page {
        store
            .inner
            .with_reader(|c| {
                page_tx(
                    c,
                    &PageQuery {
                        app_id: "notes".into(),
                        viewer: Viewer::personal(user),
                        collections: None,
                        since,
                        limit,
                        exclude_client: None,
                    },
                )
            })
            .unwrap()
    }

    #[test]
    fn snapshot_keeps_per_field_timestamps_and_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
        push(
            &store,
            "a",
            vec![
                ch(json!({"eventId": eid(1), "table": "notes", "id": "n1", "op": "insert",
                    "data": {"title": "t", "body": "b"}, "updatedAt": hlc(1, 1), "actor": {"kind": "ai"}})),
                ch(json!({"eventId": eid(2), "table": "notes", "id": "n1", "op": "update",
                    "fields": {"title": {"value": "T", "updatedAt": hlc(5, 1)}}})),
                ch(json!({"eventId": eid(3), "table": "notes", "id": "n2", "op": "insert",
                    "data": {"title": "x"}, "updatedAt": hlc(2, 1)})),
                ch(json!({"eventId": eid(4), "table": "notes", "id": "n2", "op": "delete",
                    "deletedAt": hlc(6, 1)})),
            ],
        )
        .unwrap();
        let p = page(&store, "a", None, 10);
        assert!(!p.has_more);
        assert_eq!(p.next, Cursor::Log(4));
        // n1's fields have two actors: two updates, each field with its own HLC and actor.
        let n1: Vec<&Change> = p.changes.iter().filter(|c| c.id == "n1").collect();
        assert_eq!(n1.len(), 2);
        let mut s = RecordState::default();
        for c in &n1 {
            c.validate().unwrap();
            assert_eq!(c.op, Op::Update);
            s = apply(s, c).unwrap().0;
        }
        assert_eq!(s.fields["title"].at.to_string(), hlc(5, 1));
        assert_eq!(s.fields["title"].actor, None);
        assert_eq!(s.fields["body"].at.to_string(), hlc(1, 1));
        assert_eq!(s.fields["body"].actor, Some(json!({"kind": "ai"})));
        assert_ne!(n1[0].event_id, n1[1].event_id);
        let n2: Vec<&Change> = p.changes.iter().filter(|c| c.id == "n2").collect();
        assert_eq!(n2.len(), 1);
        assert_eq!(n2[0].deleted_at.as_deref(), Some(hlc(6, 1).as_str()));
        // A record written by one write travels as one insert at its HLC.
        push(
            &store,
            "a",
            vec![ch(
                json!({"eventId": eid(5), "table": "notes", "id": "n3", "op": "insert",
                "data": {"title": "one"}, "updatedAt": hlc(7, 1)}),
            )],
        )
        .unwrap();
        let p = page(&store, "a", None, 10);
        let n3 = p.changes.iter().find(|c| c.id == "n3").unwrap();
        assert_eq!(
            (n3.op, n3.updated_at.clone()),
            (Op::Insert, Some(hlc(7, 1)))
        );
        assert_eq!(n3.data.as_ref().unwrap()["title"], json!("one"));
        // The page limit counts records, not changes: 3 records, limit 2.
        let first = page(&store, "a", None, 2);
        assert!(first.has_more);
        assert_eq!(
            first
                .changes
                .iter()
                .map(|c| c.id.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            2
        );
        // Another user sees nothing.
        assert!(page(&store, "b", None, 10).changes.is_empty());
    }

    #[test]
    fn invalid_push_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
        push(
            &store,
            "a",
            vec![ch(
                json!({"eventId": eid(1), "table": "notes", "id": "n1", "op": "insert",
                "data": {"title": "t"}, "updatedAt": hlc(1, 1)}),
            )],
        )
        .unwrap();
        let err = push(
            &store,
            "b",
            vec![
                ch(
                    json!({"eventId": eid(2), "table": "notes", "id": "n9", "op": "insert",
                    "data": {"title": "ok"}, "updatedAt": hlc(1, 2)}),
                ),
                ch(
                    json!({"eventId": eid(3), "table": "notes", "id": "n1", "op": "update",
                    "fields": {"title": {"value": "hijack", "updatedAt": hlc(9, 2)}}}),
                ),
            ],
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::Forbidden { index: 1, .. }));
        assert!(page(&store, "b", None, 10).changes.is_empty());
        assert_eq!(page(&store, "a", Some(Cursor::Log(0)), 10).changes.len(), 1);
    }

    #[test]
    fn state_encoding_round_trips_awkward_names_and_values() {
        let c = ch(
            json!({"eventId": eid(1), "table": "t", "id": "x", "op": "insert",
            "data": {"we\"ird\\name": "va\"l\nue", "n": 1.5, "o": {"a": [1, null]}},
            "updatedAt": hlc(1, 1), "actor": {"kind": "ai", "name": "é\"x"}}),
        );
        let state = RecordState::from_change(&c).unwrap();
        let text = encode_state(&state).unwrap();
        assert_eq!(decode_state(&text).unwrap(), state);
        assert_eq!(
            decode_state(&encode_state(&RecordState::default()).unwrap()).unwrap(),
            RecordState::default()
        );
    }

    #[test]
    fn a_change_repeated_within_one_push_is_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
        let c = ch(
            json!({"eventId": eid(1), "table": "notes", "id": "n1", "op": "insert",
            "data": {"title": "t"}, "updatedAt": hlc(1, 1)}),
        );
        let out = push(&store, "a", vec![c.clone(), c.clone()]).unwrap();
        assert_eq!((out.applied.len(), out.duplicates), (1, 1));
        let out = push(&store, "a", vec![c]).unwrap();
        assert_eq!((out.applied.len(), out.duplicates), (0, 1));
        assert_eq!(page(&store, "a", Some(Cursor::Log(0)), 10).changes.len(), 1);
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        drop(open_writer(&p).unwrap());
        let c = open_writer(&p).unwrap();
        migrate(&c).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
