//! `LiveQuery`: a query that re-runs after every write to its collection, implementing the
//! Svelte store contract (`subscribe(fn)` returns an unsubscribe function; `fn` is called at
//! once — with `undefined` until the first result is loaded — and after every change; with
//! `undefined` again while the vault is locked).

use crate::error_code::ErrorCode;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::json::parse;
use super::listeners::unsubscribe_function;
use super::query::ListQuery;
use super::store::{ManaStore, StoreInner};
use super::types::ListQueryJs;

#[wasm_bindgen]
pub struct LiveQuery {
    store: Rc<StoreInner>,
    collection: String,
    query: ListQuery,
}

impl LiveQuery {
    pub(crate) fn new(store: Rc<StoreInner>, collection: String, query: ListQuery) -> LiveQuery {
        LiveQuery {
            store,
            collection,
            query,
        }
    }
}

/// One subscription: the callback and the last result sent to it (as JSON text), so that a
/// write that does not change the result does not call it again.
struct Subscription {
    callback: js_sys::Function,
    last: RefCell<Option<String>>,
    /// Bumped per run; only the newest run may deliver (runs can finish out of order).
    generation: Cell<u64>,
    active: Cell<bool>,
}

fn run(store: Weak<StoreInner>, collection: String, query: ListQuery, sub: Rc<Subscription>) {
    let generation = sub.generation.get() + 1;
    sub.generation.set(generation);
    spawn_local(async move {
        let Some(store) = store.upgrade() else { return };
        let result = store.list_json(&collection, &query).await;
        if !sub.active.get() || sub.generation.get() != generation {
            return;
        }
        match result {
            Ok(json) => {
                if sub.last.borrow().as_deref() == Some(json.as_str()) {
                    return;
                }
                if let Ok(value) = parse(&json) {
                    *sub.last.borrow_mut() = Some(json);
                    let _ = sub.callback.call1(&JsValue::NULL, &value);
                }
            }
            // Locked: subscribers go back to `undefined` so no decrypted data lingers in the
            // UI; unlocking re-runs every query.
            Err(e) if e.code == ErrorCode::VaultLocked => {
                if sub.last.borrow_mut().take().is_some() {
                    let _ = sub.callback.call1(&JsValue::NULL, &JsValue::UNDEFINED);
                }
            }
            // Other failures report nothing; the next successful run delivers. Errors are
            // visible through `list`.
            Err(e) => {
                web_sys::console::warn_1(&format!("liveQuery {collection}: {}", e.message).into())
            }
        }
    });
}

#[wasm_bindgen]
impl LiveQuery {
    /// Calls `callback` now (with `undefined` until loaded) and after every change of the
    /// result. Returns the function that unsubscribes.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(records: ManaRecord[] | undefined) => void")]
        callback: js_sys::Function,
    ) -> JsValue {
        let sub = Rc::new(Subscription {
            callback,
            last: RefCell::new(None),
            generation: Cell::new(0),
            active: Cell::new(true),
        });
        let _ = sub.callback.call1(&JsValue::NULL, &JsValue::UNDEFINED);
        let weak = Rc::downgrade(&self.store);
        let (collection, query) = (self.collection.clone(), self.query.clone());
        let rerun_sub = sub.clone();
        let rerun: Rc<dyn Fn()> = Rc::new(move || {
            run(
                weak.clone(),
                collection.clone(),
                query.clone(),
                rerun_sub.clone(),
            )
        });
        rerun();
        let id = self.store.listeners.add(self.collection.clone(), rerun);
        let store = Rc::downgrade(&self.store);
        unsubscribe_function(move || {
            sub.active.set(false);
            if let Some(store) = store.upgrade() {
                store.listeners.remove(id);
            }
        })
    }
}

#[wasm_bindgen]
impl ManaStore {
    /// A query that re-runs after every write to its collection (Svelte store contract).
    #[wasm_bindgen(js_name = liveQuery)]
    pub fn live_query(
        &self,
        collection: String,
        query: Option<ListQueryJs>,
    ) -> Result<LiveQuery, JsValue> {
        self.inner.check_collection(&collection)?;
        let query = ListQuery::from_js(&query.map(JsValue::from).unwrap_or(JsValue::UNDEFINED))?;
        Ok(LiveQuery::new(self.inner.clone(), collection, query))
    }
}
