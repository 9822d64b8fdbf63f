//! The invariants checked once every device has settled:
//! 1. **convergence**: every device holds exactly the server's state (value, HLC, actor of
//!    every field), and so does a fresh pull from scratch;
//! 2. **nothing acknowledged is lost**: every change written anywhere is reflected in the
//!    final state (each field at least as new as the change), and no change is pending;
//! 3. **nothing is applied twice**: the change log holds every written event id exactly
//!    once, and nothing else;
//! 4. **no plaintext of encrypted fields reaches the server**: the database files never
//!    contain `secret-`, and every encrypted value there opens under the vault key.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use mana_sync::clock::Hlc;
use mana_sync::crypto::is_encrypted;
use mana_sync::merge::{apply, field_writes, FieldState, RecordState};
use mana_sync::protocol::PullResponse;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

use super::device::{Key, Schema};
use super::server::uri;
use super::world::World;
use super::Failure;

pub fn all(w: &mut World) -> Result<(), Failure> {
    let truth = db_state(w).map_err(|e| Failure::new("server-state-readable", e))?;
    convergence(w, &truth)?;
    nothing_lost(w, &truth)?;
    applied_once(w)?;
    no_plaintext(w, &truth)
}

type State = BTreeMap<Key, RecordState>;

fn convergence(w: &mut World, truth: &State) -> Result<(), Failure> {
    for (d, dev) in w.devices.iter().enumerate() {
        let mine = dev
            .store
            .state()
            .map_err(|e| Failure::new("local-state-readable", e))?;
        if let Some(diff) = first_diff(&w.schema, &mine, truth) {
            return Err(Failure::new(
                "convergence",
                format!("d{d} vs server: {diff}"),
            ));
        }
    }
    let pulled = pulled_state(w).map_err(|e| Failure::new("fresh-pull-works", e))?;
    if let Some(diff) = first_diff(&w.schema, &pulled, truth) {
        let detail = format!("a fresh pull vs the server's records: {diff}");
        return Err(Failure::new("convergence", detail));
    }
    Ok(())
}

fn nothing_lost(w: &World, truth: &State) -> Result<(), Failure> {
    for (d, dev) in w.devices.iter().enumerate() {
        if let Some(row) = dev.store.pending.first() {
            let detail = format!(
                "d{d} still has {} pending rows (first: key {})",
                dev.store.pending.len(),
                row.key
            );
            return Err(Failure::new("nothing-acknowledged-lost", detail));
        }
    }
    for change in &w.generated {
        let key = (change.table.clone(), change.id.clone());
        let writes = field_writes(change).expect("written changes are valid");
        for (name, written) in writes {
            let now = truth.get(&key).and_then(|s| s.fields.get(&name));
            if now.is_none_or(|f| f.at < written.at) {
                let detail = format!(
                    "{}/{}.{name} written at {} by event {} ends at {:?}",
                    key.0,
                    key.1,
                    written.at,
                    change.event_id,
                    now.map(|f| f.at.to_string())
                );
                return Err(Failure::new("nothing-acknowledged-lost", detail));
            }
        }
    }
    Ok(())
}

fn applied_once(w: &World) -> Result<(), Failure> {
    let conn = open_db(w).map_err(|e| Failure::new("applied-once", e))?;
    let mut logged: BTreeMap<String, i64> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT event_id, COUNT(*) FROM changes GROUP BY event_id")
        .expect("query the log");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("read the log");
    for row in rows {
        let (id, n) = row.expect("a log row");
        logged.insert(id, n);
    }
    for change in &w.generated {
        let n = logged.remove(&change.event_id).unwrap_or(0);
        if n != 1 {
            let detail = format!(
                "event {} ({}/{}) is logged {n} times",
                change.event_id, change.table, change.id
            );
            return Err(Failure::new("applied-once", detail));
        }
    }
    if let Some((id, _)) = logged.first_key_value() {
        let detail = format!("the log holds event {id}, which no device wrote");
        return Err(Failure::new("applied-once", detail));
    }
    Ok(())
}

fn no_plaintext(w: &World, truth: &State) -> Result<(), Failure> {
    let path = w.server.db_path();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        if let Some(at) = find(&bytes, b"secret-") {
            let detail = format!("{file} contains `secret-` at byte {at}");
            return Err(Failure::new("no-plaintext-on-server", detail));
        }
    }
    for ((collection, id), state) in truth {
        for (field, f) in &state.fields {
            if !w.schema.registry.is_encrypted_field(collection, field) || f.value.is_null() {
                continue;
            }
            let opened = w.schema.cipher.decrypt(collection, id, field, &f.value);
            let ok = is_encrypted(&f.value)
                && opened.is_ok_and(|v| v.as_str().is_some_and(|s| s.starts_with("secret-")));
            if !ok {
                let detail =
                    format!("{collection}/{id}.{field} on the server is not a sealed secret");
                return Err(Failure::new("no-plaintext-on-server", detail));
            }
        }
    }
    Ok(())
}

/// Where `needle` first occurs (a first-byte scan: `windows` is slow in debug builds).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(off) = haystack[from..].iter().position(|&b| b == needle[0]) {
        let at = from + off;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn open_db(w: &World) -> Result<Connection, String> {
    Connection::open_with_flags(w.server.db_path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("opening the server's database: {e}"))
}

/// The server's merged state, as its `records` table holds it (`{field: {v, at, a?}}`).
fn db_state(w: &World) -> Result<State, String> {
    let conn = open_db(w)?;
    let mut stmt = conn
        .prepare("SELECT tbl, record_id, state FROM records")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut out = State::new();
    for row in rows {
        let (tbl, id, text) = row.map_err(|e| e.to_string())?;
        let fields: Map<String, Value> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut state = RecordState::default();
        for (name, e) in fields {
            let at = e["at"].as_str().and_then(|s| Hlc::parse(s).ok());
            let at = at.ok_or_else(|| format!("{tbl}/{id}.{name}: no HLC"))?;
            let field = FieldState {
                value: e.get("v").cloned().unwrap_or(Value::Null),
                at,
                actor: e.get("a").cloned(),
            };
            state.fields.insert(name, field);
        }
        out.insert((tbl, id), state);
    }
    Ok(out)
}

/// What a client that never synced gets: every collection pulled from scratch, page by page.
fn pulled_state(w: &World) -> Result<State, String> {
    let mut out = State::new();
    for (app, collections) in &w.schema.apps {
        for collection in collections {
            let mut since: Option<String> = None;
            loop {
                let mut query = vec![("collection".to_owned(), collection.clone())];
                query.push(("limit".to_owned(), "5".to_owned()));
                if let Some(s) = &since {
                    query.push(("since".to_owned(), s.clone()));
                }
                let path = uri(&format!("/sync/{app}/pull"), &query);
                let token = Some(w.server.token.as_str());
                let (status, body) = w.server.send(w.rt(), Method::GET, &path, token, None);
                if status != 200 {
                    return Err(format!("GET {path}: {status} {body}"));
                }
                let page: PullResponse = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                for c in &page.server_changes {
                    let key = (c.table.clone(), c.id.clone());
                    let state = out.remove(&key).unwrap_or_default();
                    let (state, _) = apply(state, c).map_err(|e| e.to_string())?;
                    out.insert(key, state);
                }
                since = Some(page.synced_until);
                if !page.has_more {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The first record on which two states differ, with the fields that differ (sealed values
/// opened, so that a replay prints the same).
fn first_diff(schema: &Schema, got: &State, want: &State) -> Option<String> {
    let keys: BTreeSet<&Key> = got.keys().chain(want.keys()).collect();
    let key = keys.into_iter().find(|k| got.get(*k) != want.get(*k))?;
    let (g, w) = (got.get(key), want.get(key));
    Some(format!(
        "{}/{} differs: got {} want {}",
        key.0,
        key.1,
        show(schema, key, g, w),
        show(schema, key, w, g)
    ))
}

/// The fields of `a` that `b` does not have the same.
fn show(schema: &Schema, key: &Key, a: Option<&RecordState>, b: Option<&RecordState>) -> String {
    let Some(a) = a else {
        return "absent".into();
    };
    let fields: Vec<String> = a
        .fields
        .iter()
        .filter(|(name, f)| b.and_then(|b| b.fields.get(*name)) != Some(*f))
        .map(|(name, f)| {
            let value = schema
                .cipher
                .decrypt(&key.0, &key.1, name, &f.value)
                .unwrap_or(Value::Null);
            format!("{name}={value} @{} actor {:?}", f.at, f.actor)
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}
