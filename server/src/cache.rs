//! A small per-key cache whose entries expire (memberships and billing answers, 5 minutes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// Above this many entries, expired ones are swept on insert (one per user at most).
const SWEEP_ABOVE: usize = 10_000;

pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> TtlCache<V> {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value stored for `key` less than the TTL ago.
    pub async fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().await;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub async fn insert(&self, key: &str, value: V) {
        let mut entries = self.entries.lock().await;
        if entries.len() >= SWEEP_ABOVE {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key.to_owned(), (Instant::now(), value));
    }
}
