//! Reads: pages of the log or of the current state (a first sync), the head, changed tables.
//! Same queries and paging as the SQLite backend; each runs in one [`ViewerTx`], so row-level
//! security sees the viewer too (the `WHERE author = … OR space_id = …` stays: it is the
//! query's meaning, the policies are the net under it).

use mana_sync::{Change, Op};

use super::{db, PgStore, ViewerTx};
use crate::store::sqlite::{decode_state, snapshot_changes};
use crate::store::{Cursor, Page, PageQuery, StoreError, Viewer};

/// A consistent snapshot: head and rows from the same moment.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

pub(super) async fn head(store: &PgStore) -> Result<i64, StoreError> {
    let c = store.conn().await?;
    let row = c
        .query_one("SELECT seq FROM log_head", &[])
        .await
        .map_err(db)?;
    Ok(row.get(0))
}

pub(super) async fn changed_tables(
    store: &PgStore,
    viewer: Viewer,
    after: i64,
    app_id: Option<String>,
) -> Result<Vec<(String, String)>, StoreError> {
    let tx = ViewerTx::begin(store, &viewer, BEGIN_READ).await?;
    let c = tx.client();
    let stmt = c
        .prepare_cached(
            "SELECT DISTINCT app_id, tbl FROM changes
             WHERE seq > $1 AND ($2::text IS NULL OR app_id = $2)
               AND (author = $3 OR space_id = ANY ($4))",
        )
        .await
        .map_err(db)?;
    let spaces: Vec<&str> = viewer.spaces.iter().map(String::as_str).collect();
    let rows = c
        .query(&stmt, &[&after, &app_id, &viewer.user_id, &spaces])
        .await
        .map_err(db)?;
    tx.commit().await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) async fn page(store: &PgStore, q: PageQuery) -> Result<Page, StoreError> {
    let tx = ViewerTx::begin(store, &q.viewer, BEGIN_READ).await?;
    let c = tx.client();
    let head: i64 = c
        .query_one("SELECT seq FROM log_head", &[])
        .await
        .map_err(db)?
        .get(0);
    let limit = q.limit.clamp(1, 100_000);
    let page = match q.since {
        // A cursor from the future (another or a reset server): serve a full resync.
        Some(Cursor::Log(since)) if since <= head => log_page(c, &q, since, head, limit).await?,
        Some(Cursor::Snapshot { upto, after }) if upto <= head => {
            snapshot_page(c, &q, upto, after, head, limit).await?
        }
        _ => snapshot_page(c, &q, head, 0, head, limit).await?,
    };
    tx.commit().await?;
    Ok(page)
}

fn corrupt(seq: i64, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt change {seq}: {e}"))
}

fn json<T: serde::de::DeserializeOwned>(
    s: Option<String>,
    seq: i64,
) -> Result<Option<T>, StoreError> {
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| corrupt(seq, e))
}

async fn log_page(
    c: &deadpool_postgres::ClientWrapper,
    q: &PageQuery,
    since: i64,
    head: i64,
    limit: usize,
) -> Result<Page, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT seq, event_id, tbl, record_id, op, data, fields, updated_at, deleted_at,
                    actor, schema_version, space_id
             FROM changes
             WHERE app_id = $1 AND seq > $2 AND seq <= $3
               AND ($4::text[] IS NULL OR tbl = ANY ($4))
               AND (author = $5 OR space_id = ANY ($6))
               AND ($7::text IS NULL OR client_id <> $7)
             ORDER BY seq LIMIT $8",
        )
        .await
        .map_err(db)?;
    let spaces: Vec<&str> = q.viewer.spaces.iter().map(String::as_str).collect();
    let rows = c
        .query(
            &stmt,
            &[
                &q.app_id,
                &since,
                &head,
                &q.collections,
                &q.viewer.user_id,
                &spaces,
                &q.exclude_client,
                &((limit + 1) as i64),
            ],
        )
        .await
        .map_err(db)?;
    let has_more = rows.len() > limit;
    let mut changes = Vec::with_capacity(rows.len().min(limit));
    let mut last_seq = since;
    for r in rows.iter().take(limit) {
        let seq: i64 = r.get(0);
        let sv: i32 = r.get(10);
        changes.push(Change {
            event_id: r.get(1),
            table: r.get(2),
            id: r.get(3),
            op: Op::parse(r.get(4)),
            data: json(r.get(5), seq)?,
            fields: json(r.get(6), seq)?,
            updated_at: r.get(7),
            deleted_at: r.get(8),
            actor: json(r.get(9), seq)?,
            schema_version: Some(sv.max(0) as u32),
            space_id: r.get(11),
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

async fn snapshot_page(
    c: &deadpool_postgres::ClientWrapper,
    q: &PageQuery,
    upto: i64,
    after: i64,
    head: i64,
    limit: usize,
) -> Result<Page, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT rid, tbl, record_id, space_id, state, updated_at, schema_version, last_seq
             FROM records
             WHERE app_id = $1 AND rid > $2
               AND ($3::text[] IS NULL OR tbl = ANY ($3))
               AND (author = $4 OR space_id = ANY ($5))
             ORDER BY rid LIMIT $6",
        )
        .await
        .map_err(db)?;
    let spaces: Vec<&str> = q.viewer.spaces.iter().map(String::as_str).collect();
    let rows = c
        .query(
            &stmt,
            &[
                &q.app_id,
                &after,
                &q.collections,
                &q.viewer.user_id,
                &spaces,
                &((limit + 1) as i64),
            ],
        )
        .await
        .map_err(db)?;
    // The limit counts records: a record may travel as several changes (one per actor).
    let has_more = rows.len() > limit;
    let mut changes = Vec::with_capacity(rows.len().min(limit));
    let mut last_rid = after;
    for r in rows.iter().take(limit) {
        let rid: i64 = r.get(0);
        let state = decode_state(r.get(4))?;
        let sv: i32 = r.get(6);
        changes.extend(snapshot_changes(
            &q.app_id,
            r.get(1),
            r.get(2),
            r.get(3),
            &state,
            r.get(5),
            sv.max(0) as u32,
            r.get(7),
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
