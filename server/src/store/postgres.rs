//! PostgreSQL implementation of [`Store`](super::Store): several stateless server instances on
//! one database (docs/deployment.md).
//!
//! Why tokio-postgres + deadpool-postgres rather than sqlx: the server's queries are a handful
//! of fixed statements, so sqlx's compile-time checking (which needs a live database or an
//! offline cache at build time) and its query builder buy nothing, while its macros, drivers
//! and TLS stacks cost build time on a small machine. tokio-postgres is the driver sqlx-less
//! Rust stacks use, speaks the binary protocol with prepared statements and pipelining, and
//! gives `LISTEN`/`NOTIFY` through its connection's message stream; deadpool-postgres is a
//! thin pool over it with a statement cache per connection. No TLS: the server reaches its
//! database on a private network or loopback (docs/deployment.md says how to add TLS in front).
//!
//! Row-level security (migrations/postgres/0001_init.sql): every request's queries run in one
//! transaction that first sets `app.current_user_id` and `app.current_user_space_ids` with
//! `set_config(…, true)` — transaction-local, so a pooled connection never carries one user's
//! setting into another's request ([`ViewerTx`]). The server refuses to run as a superuser or
//! a `BYPASSRLS` role (policies would silently not apply) unless `--dev`.
//!
//! The cursor: a push locks the one row of `log_head` first and holds it until it commits, so
//! pushes append one after the other and sequence order is commit order (see the migration).

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use async_trait::async_trait;

use super::{Page, PageQuery, PushScope, PushTx, Store, StoreError, Viewer};

mod listen;
mod page;
mod push;
mod tx;

pub use listen::{listen, NOTIFY_CHANNEL};
pub(crate) use tx::ViewerTx;

/// Versioned migrations, applied in order and recorded in `mana_migrations`.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "init",
    include_str!("../../migrations/postgres/0001_init.sql"),
)];

/// Connections in the pool (each instance). Pushes are serialized by the log lock anyway; the
/// rest serve pages and streams.
pub const DEFAULT_POOL_SIZE: usize = 16;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: Arc<tokio_postgres::Config>,
}

pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        // Class 08 (connection exception) and 57P (shut down, crashed, starting up): the
        // database, not the request, is the problem.
        Some(d) if d.code().code().starts_with("08") || d.code().code().starts_with("57P") => {
            StoreError::Unavailable(format!("postgres: {} ({})", d.message(), d.code().code()))
        }
        Some(d) => StoreError::Internal(format!("postgres: {} ({})", d.message(), d.code().code())),
        // No answer from the database at all: the connection broke or never opened.
        None if e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) =>
        {
            StoreError::Unavailable(format!("postgres: {e}"))
        }
        None => StoreError::Internal(format!("postgres: {e}")),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), refuses a superuser or `BYPASSRLS` role unless
    /// `allow_privileged` (`--dev`), and runs the migrations. Blocking (it runs on a thread of
    /// its own, so it works from inside or outside a runtime); the pool connects lazily, on the
    /// runtime that uses it.
    pub fn open(url: &str, allow_privileged: bool) -> Result<PgStore, String> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("DATABASE_URL: {e}"))?;
        let check = config.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(prepare(&check, allow_privileged))
        })
        .join()
        .map_err(|_| "database set-up panicked".to_owned())??;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(DEFAULT_POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("connection pool: {e}"))?;
        Ok(PgStore {
            pool,
            config: Arc::new(config),
        })
    }

    /// The pool (the benchmark's raw baseline writes through the same connections).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The connection settings (the `LISTEN` task opens its own connection with them).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

/// What a role may do that would make row-level security not apply to it.
pub async fn role_bypasses_rls(client: &tokio_postgres::Client) -> Result<Option<String>, String> {
    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles
             WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| db(e).to_string())?;
    let (name, sup, bypass): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
    Ok(match (sup, bypass) {
        (true, _) => Some(format!("role {name:?} is a superuser")),
        (_, true) => Some(format!("role {name:?} has BYPASSRLS")),
        _ => None,
    })
}

async fn prepare(config: &tokio_postgres::Config, allow_privileged: bool) -> Result<(), String> {
    let (mut client, conn) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("connect to PostgreSQL: {}", db(e)))?;
    let conn = tokio::spawn(conn);
    if let Some(why) = role_bypasses_rls(&client).await? {
        if !allow_privileged {
            return Err(format!(
                "refusing to run on PostgreSQL as this role: {why}, so row-level security \
                 would not apply. Connect as a role without SUPERUSER and BYPASSRLS \
                 (docs/deployment.md), or pass --dev"
            ));
        }
        tracing::warn!("{why}: row-level security does not apply (--dev)");
    }
    migrate(&mut client).await?;
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// Applies the migrations not yet recorded, in order, in one transaction under an advisory
/// lock (instances starting together apply them once). Idempotent.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), String> {
    let err = |e: tokio_postgres::Error| format!("migrations: {}", db(e));
    let tx = client.transaction().await.map_err(err)?;
    // Any fixed key: "mana" in ASCII.
    tx.execute("SELECT pg_advisory_xact_lock(1835101793)", &[])
        .await
        .map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS mana_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(err)?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM mana_migrations", &[])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {version:04}_{name}: {}", db(e)))?;
        tx.execute(
            "INSERT INTO mana_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(err)?;
        tracing::info!(version, name, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(err)
}

/// The `app.current_user_space_ids` setting: comma-joined. A space id that is empty or holds a
/// comma can't be written in it, and is left out (it matches no row).
pub fn space_ids_setting(viewer: &Viewer) -> String {
    let mut out = String::new();
    for s in viewer
        .spaces
        .iter()
        .filter(|s| !s.is_empty() && !s.contains(','))
    {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(s);
    }
    out
}

#[async_trait]
impl Store for PgStore {
    async fn begin_push(&self, scope: PushScope) -> Result<Box<dyn PushTx>, StoreError> {
        Ok(Box::new(push::begin(self, scope).await?))
    }

    async fn page(&self, q: PageQuery) -> Result<Page, StoreError> {
        page::page(self, q).await
    }

    async fn head(&self) -> Result<i64, StoreError> {
        page::head(self).await
    }

    async fn changed_tables(
        &self,
        viewer: Viewer,
        after: i64,
        app_id: Option<String>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        page::changed_tables(self, viewer, after, app_id).await
    }
}
