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
