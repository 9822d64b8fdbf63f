//! The PostgreSQL cursor never skips: a push held open (appended, not committed) while another
//! push starts and readers pull from their cursors; once everything committed, every reader
//! has pulled every committed change exactly once, in sequence order.
//!
//! Pushes run the real push path ([`store::push`]) through [`Gated`], which stops the push of a
//! `held-…` client right before its commit until the test lets it go. Without the log lock
//! (`SELECT seq FROM log_head FOR UPDATE` in `begin`), the second push numbers its changes from
//! the same head and fails, or a reader reads past a change that commits later.
//!
//! Needs `MANA_TEST_DATABASE_URL` (scripts/ci/pg.sh provides it); skipped without it.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{event_id, hlc};
use mana_sync::protocol::ValidChange;
use mana_sync::Change;
use mana_sync_server::store::postgres::PgStore;
use mana_sync_server::store::{
    self, Cursor, Page, PageQuery, PushOutcome, PushRequest, PushScope, PushTx, Store, StoreError,
    Viewer,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A push stopped before its commit; sending on `release` (or dropping it) lets it commit.
struct Held {
    client: String,
    release: oneshot::Sender<()>,
}

/// The PostgreSQL store, with pushes of `held-…` clients stopped before their commit.
struct Gated {
    inner: PgStore,
    held: mpsc::UnboundedSender<Held>,
    url: String,
}

struct GatedTx {
    inner: Box<dyn PushTx>,
    hold: Option<(String, mpsc::UnboundedSender<Held>)>,
}

#[async_trait]
impl Store for Gated {
    async fn begin_push(&self, scope: PushScope) -> Result<Box<dyn PushTx>, StoreError> {
        let hold = scope
            .client_id
            .starts_with("held-")
            .then(|| (scope.client_id.clone(), self.held.clone()));
        let inner = self.inner.begin_push(scope).await?;
        Ok(Box::new(GatedTx { inner, hold }))
    }
    async fn page(&self, q: PageQuery) -> Result<Page, StoreError> {
        self.inner.page(q).await
    }
    async fn head(&self) -> Result<i64, StoreError> {
        self.inner.head().await
    }
    async fn changed_tables(
        &self,
        viewer: Viewer,
        after: i64,
        app_id: Option<String>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.changed_tables(viewer, after, app_id).await
    }
}

#[async_trait]
impl PushTx for GatedTx {
    async fn load(&mut self, t: store::Touched) -> Result<store::Loaded, StoreError> {
        self.inner.load(t).await
    }
    async fn append(&mut self, rows: Vec<store::LogRow>) -> Result<Vec<i64>, StoreError> {
        self.inner.append(rows).await
    }
    async fn upsert(&mut self, records: Vec<store::RecordWrite>) -> Result<(), StoreError> {
        self.inner.upsert(records).await
    }
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        if let Some((client, held)) = self.hold {
            let (release, released) = oneshot::channel();
            held.send(Held { client, release }).unwrap();
            let _ = released.await;
        }
        self.inner.commit().await
    }
}

const APP: &str = "notes";
/// Only a guard against a hang: nothing waits for it to pass.
const GUARD: Duration = Duration::from_secs(20);

async fn guarded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress within {GUARD:?}"))
}

async fn gated_store(test: &str) -> Option<(Arc<Gated>, mpsc::UnboundedReceiver<Held>)> {
    let url = common::pg::fresh_database_or_skip(test).await?;
    let inner = PgStore::open(&url, false).unwrap();
    let (held, rx) = mpsc::unbounded_channel();
    Some((Arc::new(Gated { inner, held, url }), rx))
}

/// Resolves once another session of the test's database waits for a lock. Polled, as
/// PostgreSQL's own isolation tester does (a lock wait announces itself nowhere); it only
/// returns once the condition holds, it never guesses that time has passed.
async fn someone_waits_for_a_lock(url: &str) {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let stmt = c
        .prepare(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    loop {
        tick.tick().await;
        if c.query_one(&stmt, &[]).await.unwrap().get::<_, i64>(0) > 0 {
            return;
        }
    }
}

/// A push of `n` new records `{prefix}-{i}` by alice, as its own task (once it has a permit
/// of `limit`, if given).
fn spawn_push(
    store: &Arc<Gated>,
    client: &str,
    prefix: &str,
    n: usize,
    limit: Option<Arc<Semaphore>>,
) -> tokio::task::JoinHandle<Result<PushOutcome, StoreError>> {
    let changes = (0..n)
        .map(|i| {
            let c: Change = serde_json::from_value(json!({
                "eventId": event_id(), "table": "notes", "id": format!("{prefix}-{i}"),
                "op": "insert", "data": {"i": i}, "updatedAt": hlc(i as u64, 1)}))
            .unwrap();
            ValidChange::new(c).unwrap()
        })
        .collect();
    let req = PushRequest {
        app_id: APP.into(),
        viewer: Viewer::personal("alice"),
        client_id: client.into(),
        changes,
    };
    let store = store.clone();
    tokio::spawn(async move {
        let _permit = match limit {
            Some(l) => Some(l.acquire_owned().await.unwrap()),
            None => None,
        };
        store::push(&*store, req).await
    })
}

/// A client pulling alice's log from a cursor, remembering every change it got.
struct Reader {
    cursor: Cursor,
    /// `(seq, record id)` in the order pulled.
    seen: Vec<(i64, String)>,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            cursor: Cursor::Log(0),
            seen: Vec::new(),
        }
    }

    /// One page of at most `limit`; whether there is more.
    async fn pull(&mut self, store: &dyn Store, limit: usize) -> bool {
        let page = store
            .page(PageQuery {
                app_id: APP.into(),
                viewer: Viewer::personal("alice"),
                collections: None,
                since: Some(self.cursor),
                limit,
                exclude_client: None,
            })
            .await
            .unwrap();
        for c in page.changes {
            self.seen
                .push((c.seq.unwrap().parse().unwrap(), c.id.clone()));
        }
        self.cursor = page.next;
        page.has_more
    }

    async fn pull_all(&mut self, store: &dyn Store) {
        while self.pull(store, 1000).await {}
    }

    /// Got exactly the committed changes: each once, in sequence order, none missing.
    fn assert_saw_exactly(&self, committed: &[PushOutcome], who: &str) {
        let mut want: Vec<(i64, String)> = committed
            .iter()
            .flat_map(|o| o.applied.iter().map(|a| (a.seq, a.id.clone())))
            .collect();
        want.sort();
        let seqs: Vec<i64> = self.seen.iter().map(|s| s.0).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{who}: out of order or twice: {seqs:?}"
        );
        let skipped: Vec<_> = want.iter().filter(|w| !self.seen.contains(w)).collect();
        assert!(skipped.is_empty(), "{who}: skipped {skipped:?}");
        assert_eq!(self.seen, want, "{who}: pulled what was not committed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_held_open_is_not_skipped_by_a_reader() {
    let test = "a_push_held_open_is_not_skipped_by_a_reader";
    let Some((store, mut held)) = gated_store(test).await else {
        return;
    };
    let mut reader = Reader::new();

    // A appends three changes and stops before committing, holding its transaction open.
    let a = spawn_push(&store, "held-a", "a", 3, None);
    let a_held = guarded("A reaches its commit", held.recv()).await.unwrap();
    assert_eq!(a_held.client, "held-a");
    assert!(!reader.pull(&*store, 1000).await);
    assert!(reader.seen.is_empty(), "uncommitted rows were pulled");

    // B starts while A is open: it must wait (for the log lock) or commit on its own. The
    // test goes on once it did either, and a reader pulls: its cursor must not move past A's
    // changes before they commit.
    let mut b = spawn_push(&store, "b", "b", 2, None);
    let b_first = guarded("B waits or commits", async {
        tokio::select! {
            r = &mut b => Some(r.unwrap().expect("push B")),
            () = someone_waits_for_a_lock(&store.url) => None,
        }
    })
    .await;
    reader.pull(&*store, 1).await;

    a_held.release.send(()).unwrap();
    let a = guarded("A commits", a).await.unwrap().expect("push A");
    reader.pull(&*store, 1).await;
    let b_committed_first = b_first.is_some();
    let b = match b_first {
        Some(b) => b,
        None => guarded("B commits", b).await.unwrap().expect("push B"),
    };
    reader.pull_all(&*store).await;
    reader.assert_saw_exactly(&[a.clone(), b.clone()], "reader");

    // B started after A held the log: its changes come after A's, so whoever saw B saw A.
    let a_max = a.applied.iter().map(|c| c.seq).max().unwrap();
    let b_min = b.applied.iter().map(|c| c.seq).min().unwrap();
    assert!(b_min > a_max, "B {b_min} numbered before A {a_max}");
    eprintln!("{test}: A seqs ..={a_max}, B from {b_min}; B committed while A was open: {b_committed_first}");

    // A reader starting over sees the same.
    let mut fresh = Reader::new();
    fresh.pull_all(&*store).await;
    assert_eq!(fresh.seen, reader.seen);
}

/// splitmix64: a seeded, reproducible schedule (printed, so a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// `pushes` concurrent pushes (every other one held open until a reader pulled while it
/// was), three readers pulling pages of random size throughout: each reader's pulls together
/// are exactly the committed changes.
async fn randomized(seed: u64, pushes: usize) {
    let test = format!("randomized_concurrent_pushes(seed {seed})");
    let Some((store, mut held)) = gated_store(&test).await else {
        return;
    };
    let mut rng = Rng(seed);
    // Pushes waiting for the log lock hold a pooled connection each: leave the readers some.
    let in_flight = Arc::new(Semaphore::new(6));
    let mut tasks = Vec::new();
    for p in 0..pushes {
        let client = if rng.below(2) == 0 {
            format!("held-{p}")
        } else {
            format!("c{p}")
        };
        let n = 1 + rng.below(6) as usize;
        let limit = Some(in_flight.clone());
        tasks.push(spawn_push(&store, &client, &format!("p{p}"), n, limit));
    }
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for r in 0..3u64 {
        let store = store.clone();
        let mut done = done.clone();
        let mut rng = Rng(seed ^ (r + 1));
        readers.push(tokio::spawn(async move {
            let mut reader = Reader::new();
            while !*done.borrow_and_update() {
                reader.pull(&*store, 1 + rng.below(7) as usize).await;
                tokio::task::yield_now().await;
            }
            reader.pull_all(&*store).await;
            reader
        }));
    }
    // Each held push stays open until a reader of the test's own pulled a page while it was.
    let mut probe = Reader::new();
    let mut open_pulls = 0;
    let all = async {
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().expect("push"));
        }
        outcomes
    };
    tokio::pin!(all);
    let outcomes = guarded(&test, async {
        loop {
            tokio::select! {
                outcomes = &mut all => break outcomes,
                Some(h) = held.recv() => {
                    probe.pull(&*store, 1 + rng.below(4) as usize).await;
                    open_pulls += 1;
                    h.release.send(()).unwrap();
                }
            }
        }
    })
    .await;
    done_tx.send(true).unwrap();
    probe.pull_all(&*store).await;
    probe.assert_saw_exactly(&outcomes, "probe");
    for (i, r) in readers.into_iter().enumerate() {
        let reader = guarded("reader", r).await.unwrap();
        reader.assert_saw_exactly(&outcomes, &format!("reader {i}"));
    }
    let total: usize = outcomes.iter().map(|o| o.applied.len()).sum();
    eprintln!("{test}: {pushes} pushes, {total} changes, {open_pulls} pulls while one was open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_concurrent_pushes_and_readers_lose_nothing() {
    for seed in [1, 7, 2026] {
        randomized(seed, 24).await;
    }
}
