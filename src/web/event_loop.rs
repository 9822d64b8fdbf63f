//! Giving the page's event loop its turns during long work (export, import, `bulkPut`, a first
//! sync), so that no main-thread task runs long and progress callbacks keep coming.
//!
//! An `await` on a promise that is already settled does not end the task (it continues as a
//! microtask), so long work yields explicitly, by a `MessageChannel` message (a `setTimeout(0)`
//! would be clamped to 4 ms once nested).
//! Inside an IndexedDB transaction, yield by awaiting one of its requests instead: an idle
//! transaction commits when its task ends.

use std::future::Future;

use futures::future::{select, Either};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::error::{internal, JsCodedError};

/// Main-thread work between two yields: tasks stay far below 100 ms, and yielding costs
/// little next to it.
pub const SLICE_MS: f64 = 25.0;

/// How often progress is reported while one long asynchronous step (a PBKDF2 derivation, a
/// WebCrypto encryption) runs off the main thread.
pub const TICK_MS: i32 = 200;

pub fn now() -> f64 {
    js_sys::Date::now()
}

fn global(name: &str) -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &name.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Ends the current task; resolves at the start of a later one, after the tasks already queued
/// (a `MessageChannel` message: `scheduler.yield()` would run the continuation ahead of them,
/// so the app's own timers and messages would wait for the whole export).
pub async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _| match web_sys::MessageChannel::new() {
        Ok(channel) => {
            channel.port1().set_onmessage(Some(&resolve));
            let _ = channel.port2().post_message(&JsValue::NULL);
        }
        Err(_) => {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Resolves after `ms` milliseconds (`setTimeout`).
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let set = global("setTimeout").and_then(|f| f.dyn_into::<Function>().ok());
        match set {
            Some(set) => {
                let _ = set.call2(&JsValue::NULL, &resolve, &ms.into());
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Counts main-thread time since the last yield.
pub struct Slicer {
    start: f64,
}

impl Slicer {
    pub fn new() -> Slicer {
        Slicer { start: now() }
    }

    /// Whether this slice has used its time.
    pub fn due(&self) -> bool {
        now() - self.start >= SLICE_MS
    }

    /// Starts a new slice (after the caller yielded in its own way).
    pub fn restart(&mut self) {
        self.start = now();
    }

    /// Yields to the event loop if this slice has used its time.
    pub async fn tick(&mut self) {
        if self.due() {
            yield_now().await;
            self.restart();
        }
    }
}

/// Awaits `work`, calling `tick` every [`TICK_MS`] until it is done.
pub async fn ticking<T>(work: impl Future<Output = T>, mut tick: impl FnMut()) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        let timer = std::pin::pin!(sleep(TICK_MS));
        match select(work, timer).await {
            Either::Left((out, _)) => return out,
            Either::Right(((), pending)) => {
                tick();
                work = pending;
            }
        }
    }
}

/// Starts `work` now, in the background (it would otherwise wait until first awaited), and
/// returns its result when awaited.
pub fn started<T: 'static, E: From<JsCodedError> + 'static>(
    work: impl Future<Output = Result<T, E>> + 'static,
) -> impl Future<Output = Result<T, E>> {
    let (tx, rx) = futures::channel::oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = tx.send(work.await);
    });
    async move {
        rx.await
            .unwrap_or_else(|_| Err(internal("a background task ended without its result").into()))
    }
}
