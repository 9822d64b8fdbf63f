//! [`ViewerTx`]: a request's one transaction, with the viewer's row-level security settings.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{db, space_ids_setting, PgStore};
use crate::store::{StoreError, Viewer};

impl PgStore {
    pub(super) async fn conn(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
    }
}

/// One request's transaction on a pooled connection, with the viewer's row-level security
/// settings. Dropped without [`ViewerTx::commit`] (an error, a cancelled request), it rolls
/// back before the connection serves anyone else.
pub(crate) struct ViewerTx {
    conn: Option<Object>,
}

impl ViewerTx {
    /// Begins a transaction for `viewer`. An empty user id is refused before any query.
    pub(crate) async fn begin(
        store: &PgStore,
        viewer: &Viewer,
        begin: &'static str,
    ) -> Result<ViewerTx, StoreError> {
        Ok(Self::open(store, viewer, begin, None).await?.0)
    }

    /// [`ViewerTx::begin`], and runs `then` (a statement without parameters that returns one
    /// row) in the same round trip: its row.
    pub(crate) async fn begin_then(
        store: &PgStore,
        viewer: &Viewer,
        begin: &'static str,
        then: &'static str,
    ) -> Result<(ViewerTx, Row), StoreError> {
        match Self::open(store, viewer, begin, Some(then)).await? {
            (tx, Some(row)) => Ok((tx, row)),
            (_, None) => Err(StoreError::Internal(format!("no row from {then}"))),
        }
    }

    async fn open(
        store: &PgStore,
        viewer: &Viewer,
        begin: &'static str,
        then: Option<&'static str>,
    ) -> Result<(ViewerTx, Option<Row>), StoreError> {
        if viewer.user_id.is_empty() {
            return Err(StoreError::Internal(
                "refused: a query without a user id".into(),
            ));
        }
        let conn = store.conn().await?;
        let tx = ViewerTx { conn: Some(conn) };
        let c = tx.client();
        let spaces = space_ids_setting(viewer);
        // Prepared once per connection (the cache), so what follows is one round trip.
        let set = c
            .prepare_cached(
                "SELECT set_config('app.current_user_id', $1, true),
                        set_config('app.current_user_space_ids', $2, true)",
            )
            .await
            .map_err(db)?;
        let then = match then {
            Some(sql) => Some(c.prepare_cached(sql).await.map_err(db)?),
            None => None,
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&viewer.user_id, &spaces];
        // Pipelined: all go out before the first answer is awaited.
        let (b, s, row) = tokio::join!(c.batch_execute(begin), c.execute(&set, &params), async {
            match &then {
                Some(stmt) => c.query_one(stmt, &[]).await.map(Some),
                None => Ok(None),
            }
        });
        b.map_err(db)?;
        s.map_err(db)?;
        let row = row.map_err(db)?;
        Ok((tx, row))
    }

    pub(crate) fn client(&self) -> &deadpool_postgres::ClientWrapper {
        self.conn.as_ref().expect("open transaction")
    }

    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        let conn = self.conn.take().expect("open transaction");
        match conn.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Whatever state it is in, this connection serves no one else.
                let _ = Object::take(conn);
                Err(db(e))
            }
        }
    }
}

impl Drop for ViewerTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if conn.batch_execute("ROLLBACK").await.is_err() {
                        let _ = Object::take(conn);
                    }
                });
            }
            // No runtime to roll back on: close the connection (the server rolls back).
            Err(_) => drop(Object::take(conn)),
        }
    }
}
