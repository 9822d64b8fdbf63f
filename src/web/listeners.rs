//! Who is told about committed writes: live queries per collection (re-run after every
//! commit, local, remote or from another tab) and the sync engine (after local writes, which
//! add pending changes).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::prelude::*;

/// The function `subscribe`/`on` return: runs `unsubscribe` on its first call and does nothing
/// on later ones (Svelte, RxJS and DOM `removeEventListener` allow a second call). Its Rust
/// side is freed when JS collects the function, called or not.
pub fn unsubscribe_function(unsubscribe: impl FnOnce() + 'static) -> JsValue {
    let mut once = Some(unsubscribe);
    Closure::<dyn FnMut()>::new(move || {
        if let Some(unsubscribe) = once.take() {
            unsubscribe();
        }
    })
    .into_js_value()
}

/// Called after a committed local write.
type Hook = Rc<dyn Fn()>;

struct Subscriber {
    id: u32,
    collection: String,
    rerun: Rc<dyn Fn()>,
}

/// The subscribers of a store, notified after each committed write.
#[derive(Default)]
pub struct Listeners {
    subs: RefCell<Vec<Subscriber>>,
    next_id: Cell<u32>,
    local_writes: RefCell<Vec<(u32, Hook)>>,
}

impl Listeners {
    pub fn add(&self, collection: String, rerun: Rc<dyn Fn()>) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.subs.borrow_mut().push(Subscriber {
            id,
            collection,
            rerun,
        });
        id
    }

    pub fn remove(&self, id: u32) {
        self.subs.borrow_mut().retain(|s| s.id != id);
        self.local_writes.borrow_mut().retain(|(i, _)| *i != id);
    }

    /// Calls `f` after every committed local write (one that queued pending changes).
    pub fn on_local_write(&self, f: Rc<dyn Fn()>) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.local_writes.borrow_mut().push((id, f));
        id
    }

    pub fn local_write(&self) {
        let hooks: Vec<_> = self
            .local_writes
            .borrow()
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in hooks {
            f();
        }
    }

    /// Re-runs every live query (the vault was locked or unlocked).
    pub fn notify_all(&self) {
        let reruns: Vec<_> = self.subs.borrow().iter().map(|s| s.rerun.clone()).collect();
        for rerun in reruns {
            rerun();
        }
    }

    /// Re-runs every live query of `collection`.
    pub fn notify(&self, collection: &str) {
        let reruns: Vec<_> = self
            .subs
            .borrow()
            .iter()
            .filter(|s| s.collection == collection)
            .map(|s| s.rerun.clone())
            .collect();
        for rerun in reruns {
            rerun();
        }
    }
}
