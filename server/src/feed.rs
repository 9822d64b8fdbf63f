//! Routes push notifications to the live streams they concern, by user.
//!
//! Every push is announced once on [`AppState::events`](crate::AppState) (by this instance's
//! push handler, or by PostgreSQL `LISTEN` for the other instances' pushes). One router task
//! forwards each announcement only to the users who may see one of its changes — the authors,
//! and the users whose streams are subscribed with one of the changes' spaces — on a feed per
//! user. A stream thus wakes for its own user's pushes, not for every push on the node: with
//! one shared channel, each push woke all 2,000 streams of the load harness, and those wake-ups
//! were most of the server's CPU (BENCHMARKS.md, "Load harness").
//!
//! Falling behind stays safe at both hops: a stream that lags its user's feed gets `Lagged`
//! from it, and when the router itself lags the announcements it tells every feed to
//! [`Note::Resync`]; either way the stream re-reads from its cursor.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::store::Viewer;
use crate::PushEvent;

/// What a user's feed carries.
#[derive(Debug, Clone)]
pub enum Note {
    /// A push with at least one change this user may see.
    Push(Arc<PushEvent>),
    /// Notifications were lost before they could be routed: re-read from the cursor.
    Resync,
}

struct UserFeed {
    tx: broadcast::Sender<Note>,
    /// Live subscriptions of this user.
    streams: usize,
}

#[derive(Default)]
struct Routes {
    users: HashMap<String, UserFeed>,
    /// Space → users subscribed with it → how many of their subscriptions.
    spaces: HashMap<String, HashMap<String, usize>>,
}

/// The per-user feeds. One per server state.
pub struct Feed {
    routes: Mutex<Routes>,
    capacity: usize,
    events: broadcast::Sender<Arc<PushEvent>>,
    router: OnceLock<()>,
}

/// A stream's subscription: its user's feed, unregistered on drop.
pub struct Subscription {
    pub rx: broadcast::Receiver<Note>,
    feed: Arc<Feed>,
    user_id: String,
    spaces: BTreeSet<String>,
}

impl Feed {
    /// `capacity`: notifications a stream may fall behind its user's feed by.
    pub fn new(events: broadcast::Sender<Arc<PushEvent>>, capacity: usize) -> Arc<Feed> {
        Arc::new(Feed {
            routes: Mutex::new(Routes::default()),
            capacity: capacity.max(1),
            events,
            router: OnceLock::new(),
        })
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // The routes are plain maps updated in single steps: usable after a panic elsewhere.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes a stream of `viewer`. Everything announced after this returns reaches the
    /// subscription (if it concerns the viewer), so a stream subscribes before reading its
    /// backlog.
    pub fn subscribe(self: &Arc<Self>, viewer: &Viewer) -> Subscription {
        self.start_router();
        let mut r = self.routes();
        let user = r
            .users
            .entry(viewer.user_id.clone())
            .or_insert_with(|| UserFeed {
                tx: broadcast::channel(self.capacity).0,
                streams: 0,
            });
        user.streams += 1;
        let rx = user.tx.subscribe();
        for space in &viewer.spaces {
            *r.spaces
                .entry(space.clone())
                .or_default()
                .entry(viewer.user_id.clone())
                .or_default() += 1;
        }
        Subscription {
            rx,
            feed: self.clone(),
            user_id: viewer.user_id.clone(),
            spaces: viewer.spaces.clone(),
        }
    }

    /// The router subscribes to the announcements on the first subscription (inside the
    /// runtime), before that subscription is registered: nothing announced after it is lost.
    fn start_router(self: &Arc<Self>) {
        self.router.get_or_init(|| {
            let mut rx = self.events.subscribe();
            let feed = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let got = rx.recv().await;
                    let Some(feed) = feed.upgrade() else { return };
                    match got {
                        Ok(ev) => feed.route(ev),
                        Err(RecvError::Lagged(_)) => feed.resync_all(),
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        });
    }

    /// Sends `ev` once to each user who may see one of its changes.
    fn route(&self, ev: Arc<PushEvent>) {
        let r = self.routes();
        let mut to: BTreeSet<&str> = BTreeSet::new();
        for c in &ev.changes {
            if r.users.contains_key(&c.author) {
                to.insert(&c.author);
            }
            if let Some(users) = c.space_id.as_ref().and_then(|s| r.spaces.get(s)) {
                to.extend(users.keys().map(String::as_str));
            }
        }
        for user in to {
            if let Some(u) = r.users.get(user) {
                // No receiver left is fine: the subscription is being dropped.
                let _ = u.tx.send(Note::Push(ev.clone()));
            }
        }
    }

    fn resync_all(&self) {
        for u in self.routes().users.values() {
            let _ = u.tx.send(Note::Resync);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut r = self.feed.routes();
        if let Some(u) = r.users.get_mut(&self.user_id) {
            u.streams -= 1;
            if u.streams == 0 {
                r.users.remove(&self.user_id);
            }
        }
        for space in &self.spaces {
            if let Some(users) = r.spaces.get_mut(space) {
                if let Some(n) = users.get_mut(&self.user_id) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(&self.user_id);
                    }
                }
                if users.is_empty() {
                    r.spaces.remove(space);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LoggedChange;

    fn viewer(user: &str, spaces: &[&str]) -> Viewer {
        let mut v = Viewer::personal(user);
        v.spaces.extend(spaces.iter().map(|s| s.to_string()));
        v
    }

    /// A push of one change by `author`, in `space` (or the author's personal space).
    fn push(author: &str, space: Option<&str>, seq: i64) -> Arc<PushEvent> {
        Arc::new(PushEvent {
            committed: std::time::Instant::now(),
            app_id: "notes".into(),
            client_id: "c".into(),
            changes: vec![LoggedChange {
                table: "notes".into(),
                id: format!("n{seq}"),
                seq,
                author: author.into(),
                space_id: space.map(Into::into),
            }],
        })
    }

    /// The next note's sequence number (`None` for a resync).
    async fn next(s: &mut Subscription) -> Result<Option<i64>, RecvError> {
        s.rx.recv().await.map(|n| match n {
            Note::Push(ev) => Some(ev.changes[0].seq),
            Note::Resync => None,
        })
    }

    #[tokio::test]
    async fn a_push_reaches_its_author_and_the_members_of_its_space_only() {
        let (events, _) = broadcast::channel(16);
        let feed = Feed::new(events.clone(), 16);
        let mut alice = feed.subscribe(&viewer("alice", &["team"]));
        let mut bob = feed.subscribe(&viewer("bob", &["team"]));
        let mut carol = feed.subscribe(&viewer("carol", &[]));
        events.send(push("alice", Some("team"), 1)).unwrap();
        events.send(push("alice", None, 2)).unwrap();
        events.send(push("carol", None, 3)).unwrap();
        assert_eq!(next(&mut alice).await, Ok(Some(1)));
        assert_eq!(next(&mut alice).await, Ok(Some(2)));
        assert_eq!(next(&mut bob).await, Ok(Some(1)));
        // The router handles announcements in order: carol's first note being 3 means 1 and 2
        // never went to her; bob is not told of alice's personal push or of carol's.
        assert_eq!(next(&mut carol).await, Ok(Some(3)));
        events.send(push("bob", None, 4)).unwrap();
        assert_eq!(next(&mut bob).await, Ok(Some(4)));
    }

    #[tokio::test]
    async fn a_stream_that_stops_reading_lags_its_own_feed_without_holding_up_the_others() {
        let (events, _) = broadcast::channel(16);
        let feed = Feed::new(events.clone(), 4);
        let mut slow = feed.subscribe(&viewer("alice", &["team"]));
        let mut other = feed.subscribe(&viewer("bob", &["team"]));
        for seq in 1..=10 {
            events.send(push("alice", Some("team"), seq)).unwrap();
            // Routed (the router keeps up): bob, reading, gets every push and no resync.
            assert_eq!(next(&mut other).await, Ok(Some(seq)));
        }
        assert_eq!(next(&mut slow).await, Err(RecvError::Lagged(6)));
        assert_eq!(next(&mut slow).await, Ok(Some(7)));
    }

    #[tokio::test]
    async fn a_router_that_falls_behind_tells_every_stream_to_resync() {
        let (events, _) = broadcast::channel(2);
        let feed = Feed::new(events.clone(), 64);
        let mut alice = feed.subscribe(&viewer("alice", &[]));
        let mut bob = feed.subscribe(&viewer("bob", &[]));
        // Sent before the router runs: it misses some, and whose they were is unknown.
        for seq in 1..=5 {
            events.send(push("carol", None, seq)).unwrap();
        }
        assert_eq!(next(&mut alice).await, Ok(None));
        assert_eq!(next(&mut bob).await, Ok(None));
    }

    #[tokio::test]
    async fn dropped_subscriptions_leave_no_routes_behind() {
        let (events, _) = broadcast::channel(16);
        let feed = Feed::new(events.clone(), 16);
        let a = feed.subscribe(&viewer("alice", &["team"]));
        let b = feed.subscribe(&viewer("alice", &["team", "other"]));
        drop(a);
        assert_eq!(feed.routes().users["alice"].streams, 1);
        assert_eq!(feed.routes().spaces["team"]["alice"], 1);
        drop(b);
        let r = feed.routes();
        assert!(r.users.is_empty() && r.spaces.is_empty(), "{:?}", r.spaces);
    }
}
