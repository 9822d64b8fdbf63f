//! The transaction of one push ([`PushTx`]): it stores what the plan decided, nothing more.
//!
//! `begin` takes the lock on `log_head`'s one row (`SELECT … FOR UPDATE`) and holds it to
//! commit: pushes to one database — from every instance — run one after the other, so what a
//! push loaded can't change under it, and sequence numbers commit in order (the cursor never
//! skips). Rows go in as arrays (`unnest`), one statement per table whatever the push's size.
//! The commit also announces the push (`pg_notify`, delivered at commit, so never before the
//! rows are visible) for the other instances' live streams.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::{db, listen, PgStore, ViewerTx};
use crate::store::sqlite::encode_state;
use crate::store::{
    Loaded, LogRow, PushScope, PushTx, RecordWrite, StoreError, StoredRecord, Touched,
};

pub(super) struct PgPushTx {
    tx: ViewerTx,
    scope: PushScope,
    /// The newest sequence number when the push began (under the lock).
    head: i64,
    /// What was appended, for the notification.
    notify: Vec<listen::Announced>,
    /// Whether the notification went out already (with the state rows, saving a round trip).
    notified: bool,
}

pub(super) async fn begin(store: &PgStore, scope: PushScope) -> Result<PgPushTx, StoreError> {
    let (tx, row) = ViewerTx::begin_then(
        store,
        &scope.viewer,
        "BEGIN",
        "SELECT seq FROM log_head FOR UPDATE",
    )
    .await?;
    Ok(PgPushTx {
        tx,
        scope,
        head: row.get(0),
        notify: Vec::new(),
        notified: false,
    })
}

fn json_text<T: serde::Serialize>(v: &Option<T>) -> Result<Option<String>, StoreError> {
    v.as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Internal(e.to_string()))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl PushTx for PgPushTx {
    async fn load(&mut self, touched: Touched) -> Result<Loaded, StoreError> {
        let c = self.tx.client();
        let (tbls, ids): (Vec<&str>, Vec<&str>) = touched
            .records
            .iter()
            .map(|(t, i)| (t.as_str(), i.as_str()))
            .unzip();
        // The viewer's own (and their spaces') records, whole, through the policies… (One
        // unique-index probe per key: as a plain join, a table without statistics yet — a new
        // deployment's — got a hash join over all of the app's records.)
        let visible = c
            .prepare_cached(
                "SELECT r.tbl, r.record_id, r.author, r.space_id, r.state, r.updated_at,
                        r.schema_version
                 FROM unnest($2::text[], $3::text[]) AS k(tbl, id)
                 CROSS JOIN LATERAL (
                   SELECT * FROM records r
                   WHERE r.app_id = $1 AND r.tbl = k.tbl AND r.record_id = k.id LIMIT 1) r",
            )
            .await
            .map_err(db)?;
        // …and who wrote any of them, and which eventIds are logged, whoever's they are.
        let owners = c
            .prepare_cached(
                "SELECT tbl, record_id, author, space_id FROM mana_record_owners($1, $2, $3)",
            )
            .await
            .map_err(db)?;
        let known = c
            .prepare_cached("SELECT event_id FROM mana_known_event_ids($1)")
            .await
            .map_err(db)?;
        let app = &self.scope.app_id;
        let keys: [&(dyn ToSql + Sync); 3] = [app, &tbls, &ids];
        let events: [&(dyn ToSql + Sync); 1] = [&touched.event_ids];
        // Pipelined: all three go out before the first answer is awaited.
        let (visible, owners, known) = tokio::try_join!(
            c.query(&visible, &keys),
            c.query(&owners, &keys),
            c.query(&known, &events),
        )
        .map_err(db)?;
        let mut records = HashMap::with_capacity(owners.len());
        for r in &visible {
            let sv: i32 = r.get(6);
            records.insert(
                (r.get(0), r.get(1)),
                StoredRecord {
                    author: r.get(2),
                    space_id: r.get(3),
                    state: crate::store::sqlite::decode_state(r.get(4))?,
                    updated_at: r.get(5),
                    schema_version: sv.max(0) as u32,
                },
            );
        }
        for r in &owners {
            // Not visible to the viewer: not theirs. The plan only needs whose it is.
            records
                .entry((r.get(0), r.get(1)))
                .or_insert_with(|| StoredRecord {
                    author: r.get(2),
                    space_id: r.get(3),
                    state: Default::default(),
                    updated_at: None,
                    schema_version: 1,
                });
        }
        let known_event_ids: HashSet<String> = known.iter().map(|r| r.get(0)).collect();
        Ok(Loaded {
            records,
            known_event_ids,
        })
    }

    async fn append(&mut self, rows: Vec<LogRow>) -> Result<Vec<i64>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let n = rows.len();
        let seqs: Vec<i64> = (1..=n as i64).map(|i| self.head + i).collect();
        let mut event_id = Vec::with_capacity(n);
        let mut tbl = Vec::with_capacity(n);
        let mut record_id = Vec::with_capacity(n);
        let mut author = Vec::with_capacity(n);
        let mut space_id = Vec::with_capacity(n);
        let mut op = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        let mut fields = Vec::with_capacity(n);
        let mut updated_at = Vec::with_capacity(n);
        let mut deleted_at = Vec::with_capacity(n);
        let mut actor = Vec::with_capacity(n);
        let mut schema_version = Vec::with_capacity(n);
        for (r, seq) in rows.iter().zip(&seqs) {
            let c = &r.change;
            event_id.push(c.event_id.as_str());
            tbl.push(c.table.as_str());
            record_id.push(c.id.as_str());
            author.push(r.author.as_str());
            space_id.push(r.space_id.as_deref());
            op.push(c.op.as_str());
            data.push(json_text(&c.data)?);
            fields.push(json_text(&c.fields)?);
            updated_at.push(c.updated_at.as_deref());
            deleted_at.push(c.deleted_at.as_deref());
            actor.push(json_text(&c.actor)?);
            schema_version.push(c.schema_version() as i32);
            self.notify.push(listen::Announced {
                table: c.table.clone(),
                author: r.author.clone(),
                space_id: r.space_id.clone(),
                seq: *seq,
            });
        }
        let c = self.tx.client();
        let insert = c
            .prepare_cached(
                "INSERT INTO changes (seq, event_id, app_id, tbl, record_id, author, space_id,
                   op, data, fields, updated_at, deleted_at, actor, schema_version, client_id,
                   created_at)
                 SELECT u.seq, u.event_id, $1, u.tbl, u.record_id, u.author, u.space_id, u.op,
                   u.data, u.fields, u.updated_at, u.deleted_at, u.actor, u.schema_version,
                   $2, $3
                 FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
                             $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                             $14::text[], $15::text[], $16::int[])
                   AS u(seq, event_id, tbl, record_id, author, space_id, op, data, fields,
                        updated_at, deleted_at, actor, schema_version)",
            )
            .await
            .map_err(db)?;
        let head = c
            .prepare_cached("UPDATE log_head SET seq = $1")
            .await
            .map_err(db)?;
        let last = seqs[n - 1];
        let now = now_millis();
        let params: [&(dyn ToSql + Sync); 16] = [
            &self.scope.app_id,
            &self.scope.client_id,
            &now,
            &seqs,
            &event_id,
            &tbl,
            &record_id,
            &author,
            &space_id,
            &op,
            &data,
            &fields,
            &updated_at,
            &deleted_at,
            &actor,
            &schema_version,
        ];
        let head_params: [&(dyn ToSql + Sync); 1] = [&last];
        let (inserted, _) =
            tokio::try_join!(c.execute(&insert, &params), c.execute(&head, &head_params),)
                .map_err(db)?;
        if inserted != n as u64 {
            return Err(StoreError::Internal(format!(
                "appended {inserted} of {n} log rows"
            )));
        }
        self.head = last;
        Ok(seqs)
    }

    async fn upsert(&mut self, records: Vec<RecordWrite>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let (new, old): (Vec<&RecordWrite>, Vec<&RecordWrite>) =
            records.iter().partition(|r| r.new);
        let c = self.tx.client();
        let insert = c
            .prepare_cached(
                "INSERT INTO records (app_id, tbl, record_id, author, space_id, state,
                   updated_at, schema_version, last_seq)
                 SELECT $1, u.tbl, u.record_id, u.author, u.space_id, u.state, u.updated_at,
                   u.schema_version, u.last_seq
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::int[], $9::bigint[])
                   WITH ORDINALITY AS u(tbl, record_id, author, space_id, state, updated_at,
                        schema_version, last_seq, ord)
                 ORDER BY u.ord",
            )
            .await
            .map_err(db)?;
        let update = c
            .prepare_cached(
                "UPDATE records r SET state = u.state, updated_at = u.updated_at,
                   schema_version = u.schema_version, last_seq = u.last_seq
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                             $7::bigint[])
                   AS u(tbl, record_id, state, updated_at, schema_version, last_seq)
                 WHERE r.app_id = $1 AND r.tbl = u.tbl AND r.record_id = u.record_id",
            )
            .await
            .map_err(db)?;
        let cols = |rs: &[&RecordWrite]| -> Result<Cols, StoreError> {
            let mut out = Cols::default();
            for r in rs {
                out.tbl.push(r.table.clone());
                out.id.push(r.id.clone());
                out.author.push(r.author.clone());
                out.space.push(r.space_id.clone());
                out.state.push(encode_state(&r.state)?);
                out.updated_at.push(r.updated_at.clone());
                out.sv.push(r.schema_version as i32);
                out.last_seq.push(r.last_seq);
            }
            Ok(out)
        };
        let (n, o) = (cols(&new)?, cols(&old)?);
        let app = &self.scope.app_id;
        // The announcement goes out with the rows (it is delivered at commit anyway).
        let notify = self.notification(c).await?;
        let (inserted, updated, ()) = tokio::try_join!(
            async {
                if n.tbl.is_empty() {
                    return Ok(0);
                }
                c.execute(
                    &insert,
                    &[
                        app,
                        &n.tbl,
                        &n.id,
                        &n.author,
                        &n.space,
                        &n.state,
                        &n.updated_at,
                        &n.sv,
                        &n.last_seq,
                    ],
                )
                .await
            },
            async {
                if o.tbl.is_empty() {
                    return Ok(0);
                }
                c.execute(
                    &update,
                    &[
                        app,
                        &o.tbl,
                        &o.id,
                        &o.state,
                        &o.updated_at,
                        &o.sv,
                        &o.last_seq,
                    ],
                )
                .await
            },
            notify,
        )
        .map_err(db)?;
        self.notified = true;
        if inserted + updated != records.len() as u64 {
            return Err(StoreError::Internal(format!(
                "wrote {} of {} records",
                inserted + updated,
                records.len()
            )));
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let this = *self;
        if !this.notified {
            this.notification(this.tx.client())
                .await?
                .await
                .map_err(db)?;
        }
        this.tx.commit().await
    }
}

impl PgPushTx {
    /// The `pg_notify` calls announcing what was appended (none if nothing was), ready to be
    /// pipelined with other statements of the transaction.
    async fn notification<'a>(
        &'a self,
        c: &'a deadpool_postgres::ClientWrapper,
    ) -> Result<
        impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a,
        StoreError,
    > {
        let payloads = if self.notify.is_empty() {
            Vec::new()
        } else {
            listen::payloads(&self.scope.app_id, &self.scope.client_id, &self.notify)
        };
        let stmt = c
            .prepare_cached("SELECT pg_notify($1, $2)")
            .await
            .map_err(db)?;
        Ok(async move {
            let sends = payloads.iter().map(|payload| {
                let params: [&(dyn ToSql + Sync); 2] = [&listen::NOTIFY_CHANNEL, payload];
                let stmt = &stmt;
                async move { c.execute(stmt, &params).await }
            });
            futures_util::future::try_join_all(sends).await.map(drop)
        })
    }
}

#[derive(Default)]
struct Cols {
    tbl: Vec<String>,
    id: Vec<String>,
    author: Vec<String>,
    space: Vec<Option<String>>,
    state: Vec<String>,
    updated_at: Vec<Option<String>>,
    sv: Vec<i32>,
    last_seq: Vec<i64>,
}
