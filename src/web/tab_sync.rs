//! `TabSync`: one tab's side of sync. It runs the tab's [`Lease`] — holds the Web Lock, posts
//! and hears lease messages on the store's sync channel, creates the engine's driver when this
//! tab needs one — and keeps the app's `sync.on` callbacks and `syncNow()` promises. Which tab
//! does what is decided by the lease, not here.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;

use super::error::{js_error, JsCodedError};
use super::json::to_js;
use super::listeners::unsubscribe_function;
use super::store::StoreInner;
use super::sync::{Driver, SyncConfig};
use super::tabs::TabChannel;
use super::web_lock::WebLock;
use crate::crypto::RandomPool;
use crate::protocol::ErrorBody;
use crate::sync::lease::{Lease, LeaseEffect, LeaseInput, Role, STATUS_EVENT};
use crate::sync::{Input, SyncStatus};

/// App callbacks of `sync.on(event, fn)`.
#[derive(Default)]
struct Events {
    next_id: Cell<u32>,
    subs: RefCell<Vec<(u32, &'static str, js_sys::Function)>>,
}

impl Events {
    fn add(&self, kind: &'static str, f: js_sys::Function) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.subs.borrow_mut().push((id, kind, f));
        id
    }

    fn remove(&self, id: u32) {
        self.subs.borrow_mut().retain(|(i, _, _)| *i != id);
    }

    fn emit(&self, kind: &str, value: &JsValue) {
        let fns: Vec<_> = self
            .subs
            .borrow()
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, f)| f.clone())
            .collect();
        for f in fns {
            // An app callback that throws must not stop sync.
            let _ = f.call1(&JsValue::NULL, value);
        }
    }
}

pub(crate) struct TabSync {
    me: Weak<TabSync>,
    store: Rc<StoreInner>,
    options: SyncConfig,
    lease: RefCell<Lease>,
    /// Inputs that arrive while one is handled (callbacks re-enter): handled in order after it.
    inbox: RefCell<VecDeque<LeaseInput>>,
    busy: Cell<bool>,
    /// This tab's engine, created the first time the lease feeds it.
    driver: RefCell<Option<Rc<Driver>>>,
    channel: Option<TabChannel>,
    lock: RefCell<Option<WebLock>>,
    events: Events,
    waiters: RefCell<BTreeMap<u64, (js_sys::Function, js_sys::Function)>>,
    next_waiter: Cell<u64>,
}

impl TabSync {
    pub fn new(store: Rc<StoreInner>, options: SyncConfig) -> Result<Rc<TabSync>, JsCodedError> {
        let tab = u64::from_le_bytes(RandomPool::default().array()?);
        let name = format!("mana-sync:{}:sync", store.config.name);
        let sync = Rc::new_cyclic(|me: &Weak<TabSync>| {
            let weak = me.clone();
            let channel = TabChannel::open(&name, move |text| {
                // A message this version does not know is ignored, not fatal.
                if let (Some(s), Ok(m)) = (weak.upgrade(), serde_json::from_str(text)) {
                    s.feed(LeaseInput::Message(m));
                }
            });
            TabSync {
                me: me.clone(),
                store: store.clone(),
                options,
                lease: RefCell::new(Lease::new(tab)),
                inbox: RefCell::default(),
                busy: Cell::new(false),
                driver: RefCell::new(None),
                channel,
                lock: RefCell::new(None),
                events: Events::default(),
                waiters: RefCell::default(),
                next_waiter: Cell::new(1),
            }
        });
        let weak = sync.me.clone();
        store.listeners.on_local_write(Rc::new(move || {
            if let Some(s) = weak.upgrade() {
                s.feed(LeaseInput::LocalWrite);
            }
        }));
        Ok(sync)
    }

    pub fn status(&self) -> SyncStatus {
        self.lease.borrow().status()
    }

    /// Whether this tab runs the network side of sync.
    pub fn is_leader(&self) -> bool {
        matches!(self.lease.borrow().role(), Role::Leader | Role::Solo)
    }

    /// Handles one input, then everything it led to, in order.
    pub fn feed(&self, input: LeaseInput) {
        self.inbox.borrow_mut().push_back(input);
        if self.busy.replace(true) {
            return;
        }
        loop {
            let next = self.inbox.borrow_mut().pop_front();
            let Some(input) = next else { break };
            self.lease.borrow_mut().handle(input);
            loop {
                let effect = self.lease.borrow_mut().poll_effect();
                let Some(effect) = effect else { break };
                self.run(effect);
            }
        }
        self.busy.set(false);
    }

    /// A `syncNow()` promise, settled by the lease's `Settle` effect.
    pub fn sync_now(&self) -> js_sys::Promise {
        let waiter = self.next_waiter.get();
        self.next_waiter.set(waiter + 1);
        let promise = js_sys::Promise::new(&mut |resolve, reject| {
            self.waiters.borrow_mut().insert(waiter, (resolve, reject));
        });
        self.feed(LeaseInput::SyncNow { waiter });
        promise
    }

    pub fn on(&self, kind: &'static str, f: js_sys::Function) -> JsValue {
        let id = self.events.add(kind, f);
        let me = self.me.clone();
        unsubscribe_function(move || {
            if let Some(s) = me.upgrade() {
                s.events.remove(id);
            }
        })
    }

    fn run(&self, effect: LeaseEffect) {
        match effect {
            LeaseEffect::RequestLock => self.request_lock(),
            LeaseEffect::ReleaseLock => {
                if let Some(lock) = self.lock.borrow_mut().take() {
                    lock.release();
                }
            }
            LeaseEffect::Post(message) => {
                if let (Some(channel), Ok(text)) = (&self.channel, serde_json::to_string(&message))
                {
                    channel.post(&text);
                }
            }
            LeaseEffect::Engine(input) => self.engine(input),
            LeaseEffect::Settle { waiter, result } => {
                let Some((resolve, reject)) = self.waiters.borrow_mut().remove(&waiter) else {
                    return;
                };
                let _ = match result {
                    Ok(()) => resolve.call0(&JsValue::NULL),
                    Err(e) => reject.call1(&JsValue::NULL, &js_error(&e.code, &e.message)),
                };
            }
            LeaseEffect::Status(status) => self
                .events
                .emit(STATUS_EVENT, &JsValue::from_str(status.as_str())),
            LeaseEffect::Event { kind, value } => {
                if let Ok(v) = to_js(&value) {
                    self.events.emit(kind.as_str(), &v);
                }
            }
        }
    }

    /// Followers need the channel to reach a leader: without it (or without Web Locks) this
    /// tab syncs on its own.
    fn request_lock(&self) {
        let me = self.me.clone();
        let lock = self.channel.as_ref().and_then(|_| {
            WebLock::request(
                &format!("mana-sync:{}:leader", self.store.config.name),
                move || {
                    if let Some(s) = me.upgrade() {
                        s.feed(LeaseInput::LockGranted);
                    }
                },
            )
        });
        match lock {
            Some(lock) => *self.lock.borrow_mut() = Some(lock),
            None => self.feed(LeaseInput::LocksUnavailable),
        }
    }

    fn engine(&self, input: Input) {
        let existing = self.driver.borrow().clone();
        let driver = match existing {
            Some(d) => d,
            // Nothing to stop in an engine that never ran.
            None if input == Input::Stop => return,
            None => {
                let me = self.me.clone();
                let report = Rc::new(move |input: LeaseInput| {
                    if let Some(s) = me.upgrade() {
                        s.feed(input);
                    }
                });
                match Driver::new(self.store.clone(), &self.options, report) {
                    Ok(d) => {
                        *self.driver.borrow_mut() = Some(d.clone());
                        d
                    }
                    // Only the random source can fail here; the waiters hear of it.
                    Err(e) => {
                        if let Input::SyncNow { waiter } = input {
                            self.run(LeaseEffect::Settle {
                                waiter,
                                result: Err(ErrorBody {
                                    code: e.code.as_str().to_owned(),
                                    message: e.message,
                                    index: None,
                                }),
                            });
                        }
                        return;
                    }
                }
            }
        };
        driver.feed(input);
    }
}

impl Drop for TabSync {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.borrow_mut().take() {
            lock.release();
        }
        if let Some(channel) = &self.channel {
            channel.close();
        }
    }
}
