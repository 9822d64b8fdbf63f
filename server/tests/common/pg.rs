//! PostgreSQL for the integration tests: `MANA_TEST_DATABASE_URL` (scripts/ci/pg.sh sets it)
//! names a database of the application role; every test gets a fresh database of its own.

use std::sync::atomic::{AtomicU64, Ordering};

/// The application role's URL to a new, empty database, or `None` when the tests run without
/// PostgreSQL.
pub async fn fresh_database() -> Option<String> {
    let base = std::env::var("MANA_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "mana_t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to MANA_TEST_DATABASE_URL");
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE (the test role needs CREATEDB)");
    drop(client);
    let _ = driver.await;
    Some(with_database(&base, &name))
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let (prefix, _) = head.rsplit_once('/').expect("a postgres:// URL");
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// [`fresh_database`], saying on stderr that `test` is skipped when there is no PostgreSQL.
pub async fn fresh_database_or_skip(test: &str) -> Option<String> {
    let url = fresh_database().await;
    if url.is_none() {
        eprintln!("{test}: skipped, no MANA_TEST_DATABASE_URL (run under scripts/ci/pg.sh)");
    }
    url
}
