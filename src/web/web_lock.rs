//! The Web Locks API (`navigator.locks`), as much as sync's leader election needs: ask for one
//! exclusive lock, hear when this tab holds it, release it or stop waiting. The browser
//! releases it by itself when the tab closes, crashes or is discarded.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortController;

#[wasm_bindgen]
extern "C" {
    type LockManager;

    #[wasm_bindgen(method)]
    fn request(this: &LockManager, name: &str, options: &Object, callback: &Function) -> Promise;
}

pub struct WebLock {
    abort: AbortController,
    /// Resolves the promise the lock callback returned, which releases the lock.
    release: Rc<RefCell<Option<Function>>>,
    _granted: Closure<dyn FnMut(JsValue) -> Promise>,
    _refused: Closure<dyn FnMut(JsValue)>,
}

impl WebLock {
    /// Asks for the exclusive lock `name`; `on_granted` runs once this tab holds it. `None`
    /// where Web Locks are missing.
    pub fn request(name: &str, on_granted: impl Fn() + 'static) -> Option<WebLock> {
        let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
        let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
        if !locks.is_object() {
            return None;
        }
        let locks: LockManager = locks.unchecked_into();
        let abort = AbortController::new().ok()?;
        let options = Object::new();
        Reflect::set(&options, &"signal".into(), &abort.signal()).ok()?;
        let release = Rc::new(RefCell::new(None));
        let slot = release.clone();
        let granted = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |_lock: JsValue| {
            // Held until `release()` resolves this promise.
            let held = Promise::new(&mut |resolve, _reject| *slot.borrow_mut() = Some(resolve));
            on_granted();
            held
        });
        // Giving up before the grant rejects the request with an AbortError: expected.
        let refused = Closure::<dyn FnMut(JsValue)>::new(|_| {});
        let _ = locks
            .request(name, &options, granted.as_ref().unchecked_ref())
            .catch(&refused);
        Some(WebLock {
            abort,
            release,
            _granted: granted,
            _refused: refused,
        })
    }

    /// Releases the lock if held, else stops waiting for it.
    pub fn release(&self) {
        match self.release.borrow_mut().take() {
            Some(resolve) => {
                let _ = resolve.call0(&JsValue::NULL);
            }
            None => self.abort.abort(),
        }
    }
}
