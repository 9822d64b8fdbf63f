//! Row-level security of the PostgreSQL schema, seen from the application's own role with bare
//! `SELECT`s that carry none of the server's `WHERE`s: the policies alone decide.
//!
//! Needs `MANA_TEST_DATABASE_URL` (scripts/ci/pg.sh provides it); skipped without it.

mod common;

use mana_sync_server::store::postgres::{migrate, role_bypasses_rls};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// A fresh, migrated database of the application role, or `None` without PostgreSQL.
async fn fresh() -> Option<Client> {
    let url = common::pg::fresh_database().await?;
    let mut client = connect(&url).await;
    assert_eq!(role_bypasses_rls(&client).await.unwrap(), None);
    migrate(&mut client).await.unwrap();
    Some(client)
}

/// Rows written the way the server writes them: in a transaction that sets the writer.
async fn seed(c: &mut Client) {
    for (seq, user, space, id) in [
        (1i64, "alice", None, "a1"),
        (2, "alice", Some("team"), "a2"),
        (3, "bob", None, "b1"),
        (4, "bob", Some("team"), "b2"),
        (5, "carol", Some("other"), "c1"),
    ] {
        let tx = c.transaction().await.unwrap();
        tx.execute(
            "SELECT set_config('app.current_user_id', $1, true)",
            &[&user],
        )
        .await
        .unwrap();
        tx.execute(
            "INSERT INTO changes (seq, event_id, app_id, tbl, record_id, author, space_id, op,
               schema_version, client_id, created_at)
             VALUES ($1, $2, 'notes', 'notes', $3, $4, $5, 'insert', 1, 'c', 0)",
            &[&seq, &format!("e{seq}"), &id, &user, &space],
        )
        .await
        .unwrap();
        tx.execute(
            "INSERT INTO records (app_id, tbl, record_id, author, space_id, state,
               schema_version, last_seq)
             VALUES ('notes', 'notes', $1, $2, $3, '{}', 1, $4)",
            &[&id, &user, &space, &seq],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// The record ids a bare SELECT sees, as `user` with `spaces`, in one transaction.
async fn visible(c: &mut Client, user: Option<&str>, spaces: &str, table: &str) -> Vec<String> {
    let tx = c.transaction().await.unwrap();
    if let Some(u) = user {
        tx.execute(
            "SELECT set_config('app.current_user_id', $1, true),
                    set_config('app.current_user_space_ids', $2, true)",
            &[&u, &spaces],
        )
        .await
        .unwrap();
    }
    let rows = tx
        .query(
            &format!("SELECT record_id FROM {table} ORDER BY record_id"),
            &[],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn bare_selects_see_only_what_the_policies_allow() {
    let Some(mut c) = fresh().await else { return };
    seed(&mut c).await;
    for table in ["changes", "records"] {
        // No user set: nothing, in a transaction or outside one.
        assert!(visible(&mut c, None, "", table).await.is_empty(), "{table}");
        let outside = c
            .query(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap();
        assert_eq!(outside[0].get::<_, i64>(0), 0, "{table}");
        // An empty user id is nobody.
        assert!(visible(&mut c, Some(""), "team", table).await.is_empty());
        // Only A's own rows as A.
        assert_eq!(
            visible(&mut c, Some("alice"), "", table).await,
            ["a1", "a2"]
        );
        // A space's rows only as a member (empty entries of the list are ignored).
        assert_eq!(
            visible(&mut c, Some("alice"), ",team,,", table).await,
            ["a1", "a2", "b2"]
        );
        assert_eq!(
            visible(&mut c, Some("dave"), "team", table).await,
            ["a2", "b2"]
        );
        assert_eq!(
            visible(&mut c, Some("dave"), "nope", table).await,
            Vec::<String>::new()
        );
    }
}

#[tokio::test]
async fn with_check_refuses_writing_another_users_row() {
    let Some(mut c) = fresh().await else { return };
    seed(&mut c).await;
    let as_user = |user: &'static str| {
        format!(
            "SELECT set_config('app.current_user_id', '{user}', true),
                    set_config('app.current_user_space_ids', 'team', true)"
        )
    };
    // Inserting a row authored by someone else.
    for sql in [
        "INSERT INTO changes (seq, event_id, app_id, tbl, record_id, author, op, schema_version,
           client_id, created_at) VALUES (99, 'e99', 'notes', 'notes', 'x', 'bob', 'insert', 1, 'c', 0)",
        "INSERT INTO records (app_id, tbl, record_id, author, state, schema_version, last_seq)
           VALUES ('notes', 'notes', 'x', 'bob', '{}', 1, 99)",
        // Taking over one's own row for someone else.
        "UPDATE records SET author = 'bob' WHERE record_id = 'a1'",
    ] {
        let tx = c.transaction().await.unwrap();
        tx.batch_execute(&as_user("alice")).await.unwrap();
        let e = tx.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e:?}"
        );
    }
    // A member sees bob's team row but can't change or delete it: no row matches.
    let tx = c.transaction().await.unwrap();
    tx.batch_execute(&as_user("alice")).await.unwrap();
    let n = tx
        .execute(
            "UPDATE records SET state = '{\"x\":1}' WHERE record_id = 'b2'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = tx
        .execute("DELETE FROM records WHERE record_id = 'b2'", &[])
        .await
        .unwrap();
    assert_eq!(n, 0);
    // The log is append-only, even for one's own rows.
    let n = tx
        .execute("DELETE FROM changes WHERE record_id = 'a1'", &[])
        .await
        .unwrap();
    assert_eq!(n, 0);
    tx.commit().await.unwrap();
    assert_eq!(
        visible(&mut c, Some("bob"), "", "records").await,
        ["b1", "b2"]
    );
}

#[tokio::test]
async fn one_connection_alternating_users_never_leaks() {
    let Some(mut c) = fresh().await else { return };
    seed(&mut c).await;
    // A pool of one: the same connection serves A, then B, 1,000 times each, with the
    // settings set per transaction (set_config(…, true)), as the server does.
    for i in 0..1000 {
        let a = visible(&mut c, Some("alice"), "", "records").await;
        assert_eq!(a, ["a1", "a2"], "round {i}");
        let b = visible(&mut c, Some("bob"), "", "records").await;
        assert_eq!(b, ["b1", "b2"], "round {i}: bob saw {b:?}");
        // And between requests, with nobody set, nothing.
        if i % 100 == 0 {
            assert!(visible(&mut c, None, "", "records").await.is_empty());
        }
    }
}

#[tokio::test]
async fn migrations_are_versioned_and_idempotent() {
    let Some(mut c) = fresh().await else { return };
    migrate(&mut c).await.unwrap();
    migrate(&mut c).await.unwrap();
    let versions: Vec<i32> = c
        .query("SELECT version FROM mana_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1]);
    // Every table with user rows has RLS enabled and forced.
    let rows = c
        .query(
            "SELECT relname::text, relrowsecurity, relforcerowsecurity FROM pg_class
             WHERE relname IN ('changes', 'records') ORDER BY relname",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert!(
            r.get::<_, bool>(1) && r.get::<_, bool>(2),
            "{}",
            r.get::<_, String>(0)
        );
    }
}

#[tokio::test]
async fn the_server_refuses_a_superuser_unless_dev() {
    let Ok(url) = std::env::var("MANA_TEST_PG_SUPERUSER_URL") else {
        return;
    };
    let Some(app_url) = common::pg::fresh_database().await else {
        return;
    };
    // Same database, as the superuser.
    let db = app_url.rsplit('/').next().unwrap();
    let url = format!("{}/{db}", url.rsplit_once('/').unwrap().0);
    let err = mana_sync_server::store::postgres::PgStore::open(&url, false)
        .err()
        .expect("a superuser is refused");
    assert!(err.contains("superuser"), "{err}");
    assert!(mana_sync_server::store::postgres::PgStore::open(&url, true).is_ok());
}
