//! The sync engine's browser driver: it runs the effects the pure engine (`crate::sync`)
//! asks for — `token()`, gloo-net fetch, a WebSocket, IndexedDB through the store's narrow
//! sync methods, one timer — and feeds their outcomes back as inputs. No decision is made
//! here.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use gloo_net::http::Request;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{MessageEvent, WebSocket};

use super::error::JsCodedError;
use super::store::StoreInner;
use crate::crypto::RandomPool;
use crate::sync::answer::{parse_retry_after, HttpAnswer};
use crate::sync::lease::{EventKind, LeaseInput};
use crate::sync::{
    Apply, Effect, EngineConfig, HttpMethod, HttpRequest, Input, SplitMix64, SyncEngine, SyncError,
};

/// A request that got no answer in this long counts as a network failure.
const REQUEST_TIMEOUT_MS: i32 = 30_000;

/// What `store.sync(options)` was given, resolved (every app's collections, `live` defaulted).
pub(crate) struct SyncConfig {
    pub url: String,
    pub token: js_sys::Function,
    pub apps: BTreeMap<String, Vec<String>>,
    pub live: bool,
}

/// Records written by an applied server answer (the `"change"` event).
#[derive(serde::Serialize, tsify::Tsify)]
pub(crate) struct SyncChange {
    pub collection: String,
    pub ids: Vec<String>,
}

/// An event listener added to the window: its event's name and its callback.
type Listener = (&'static str, Closure<dyn FnMut(JsValue)>);

/// A pending `setTimeout`: its handle and the callback it keeps alive.
type Timer = (JsValue, Closure<dyn FnMut()>);

struct Socket {
    ws: WebSocket,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// What the driver reports to its owner (`TabSync`): the engine's status, settled waiters and
/// app events, as inputs of the tab's lease.
pub(crate) type Report = Rc<dyn Fn(LeaseInput)>;

pub(crate) struct Driver {
    me: Weak<Driver>,
    store: Rc<StoreInner>,
    base_url: String,
    token: js_sys::Function,
    /// `None` until the stored cursors are read; inputs wait in `queued` meanwhile.
    engine: RefCell<Option<SyncEngine>>,
    queued: RefCell<Vec<Input>>,
    report: Report,
    timer: RefCell<Option<Timer>>,
    socket: RefCell<Option<Socket>>,
    online: Vec<Listener>,
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn global_fn(name: &str) -> Option<js_sys::Function> {
    js_sys::Reflect::get(&js_sys::global(), &name.into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
}

impl Driver {
    /// A driver whose engine starts from the stored cursors; runs nothing until fed.
    pub fn new(
        store: Rc<StoreInner>,
        options: &SyncConfig,
        report: Report,
    ) -> Result<Rc<Driver>, JsCodedError> {
        let seed: [u8; 8] = RandomPool::default().array()?;
        let config = EngineConfig {
            live: options.live,
            ..EngineConfig::new(
                &store.client_id,
                store.config.schema_version,
                options.apps.clone(),
            )
        };
        let driver = Rc::new_cyclic(|me: &Weak<Driver>| Driver {
            me: me.clone(),
            store: store.clone(),
            base_url: options.url.trim_end_matches('/').to_owned(),
            token: options.token.clone(),
            engine: RefCell::new(None),
            queued: RefCell::new(Vec::new()),
            report,
            timer: RefCell::new(None),
            socket: RefCell::new(None),
            online: online_listeners(me),
        });
        let weak = driver.me.clone();
        spawn_local(async move {
            let Some(d) = weak.upgrade() else { return };
            let cursors = d.store.read_cursors().await.unwrap_or_default();
            let rng = Box::new(SplitMix64(u64::from_le_bytes(seed)));
            *d.engine.borrow_mut() = Some(SyncEngine::new(config, cursors, rng));
            let queued = std::mem::take(&mut *d.queued.borrow_mut());
            for input in queued {
                d.feed(input);
            }
        });
        Ok(driver)
    }

    /// Hands one input to the engine, then runs what it asks for.
    pub fn feed(&self, input: Input) {
        {
            let mut engine = self.engine.borrow_mut();
            let Some(engine) = engine.as_mut() else {
                self.queued.borrow_mut().push(input);
                return;
            };
            engine.handle(input, now());
        }
        self.drain();
    }

    fn drain(&self) {
        loop {
            let effect = match self.engine.borrow_mut().as_mut() {
                Some(engine) => engine.poll_effect(),
                None => None,
            };
            let Some(effect) = effect else { break };
            self.run(effect);
        }
        self.arm_timer();
    }

    fn run(&self, effect: Effect) {
        match effect {
            Effect::FetchToken { refresh } => self.fetch_token(refresh),
            Effect::ReadPending => {
                let me = self.me.clone();
                spawn_local(async move {
                    let Some(d) = me.upgrade() else { return };
                    let input = match d.store.read_pending().await {
                        Ok(rows) => Input::Pending(rows),
                        Err(e) => Input::LocalFailed(local_error(e)),
                    };
                    d.feed(input);
                });
            }
            Effect::Http(req) => {
                let me = self.me.clone();
                let url = format!("{}{}", self.base_url, req.path);
                spawn_local(async move {
                    let id = req.id;
                    let answer = send(&url, req).await;
                    if let Some(d) = me.upgrade() {
                        d.feed(Input::Http { id, answer });
                    }
                });
            }
            Effect::Apply(apply) => self.apply(apply),
            Effect::WsOpen => self.open_socket(),
            Effect::WsSend(text) => {
                if let Some(s) = self.socket.borrow().as_ref() {
                    let _ = s.ws.send_with_str(&text);
                }
            }
            Effect::WsClose => self.close_socket(),
            Effect::Status(status) => (self.report)(LeaseInput::EngineStatus(status)),
            Effect::Settled { waiter, result } => {
                (self.report)(LeaseInput::EngineSettled { waiter, result })
            }
        }
    }

    fn fetch_token(&self, refresh: bool) {
        let me = self.me.clone();
        let token_fn = self.token.clone();
        spawn_local(async move {
            // A throwing or rejecting `token()` counts as "no token".
            let token = match token_fn.call1(&JsValue::NULL, &JsValue::from_bool(refresh)) {
                Ok(v) => JsFuture::from(js_sys::Promise::resolve(&v))
                    .await
                    .ok()
                    .and_then(|v| v.as_string()),
                Err(_) => None,
            };
            if let Some(d) = me.upgrade() {
                d.feed(Input::Token(token));
            }
        });
    }

    fn apply(&self, apply: Apply) {
        let me = self.me.clone();
        spawn_local(async move {
            let Some(d) = me.upgrade() else { return };
            let id = apply.id;
            match d.store.apply_remote(&apply).await {
                Ok(applied) => {
                    // Events first: an app that calls stop() from one stops before the next
                    // request.
                    for c in &applied.conflicts {
                        if let Ok(value) = serde_json::to_value(c) {
                            (d.report)(LeaseInput::EngineEvent {
                                kind: EventKind::Conflict,
                                value,
                            });
                        }
                    }
                    for (collection, ids) in &applied.changed {
                        let change = SyncChange {
                            collection: collection.clone(),
                            ids: ids.clone(),
                        };
                        let Ok(value) = serde_json::to_value(&change) else {
                            continue;
                        };
                        (d.report)(LeaseInput::EngineEvent {
                            kind: EventKind::Change,
                            value,
                        });
                    }
                    d.feed(Input::Applied { id, result: Ok(()) });
                }
                Err(e) => d.feed(Input::Applied {
                    id,
                    result: Err(local_error(e)),
                }),
            }
        });
    }

    fn open_socket(&self) {
        self.close_socket();
        let url = format!("{}/ws", ws_base(&self.base_url));
        let ws = match WebSocket::new(&url) {
            Ok(ws) => ws,
            Err(_) => {
                // Asynchronously, like a real close: never re-enter the engine from its effect.
                let me = self.me.clone();
                spawn_local(async move {
                    if let Some(d) = me.upgrade() {
                        d.feed(Input::WsClosed);
                    }
                });
                return;
            }
        };
        let handler = |make: fn(JsValue) -> Option<Input>| {
            let me = self.me.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                if let (Some(d), Some(input)) = (me.upgrade(), make(e)) {
                    d.feed(input);
                }
            })
        };
        let on_open = handler(|_| Some(Input::WsOpened));
        let on_message = handler(|e| {
            let text = e.dyn_into::<MessageEvent>().ok()?.data().as_string()?;
            Some(Input::WsMessage(text))
        });
        let on_close = handler(|_| Some(Input::WsClosed));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        *self.socket.borrow_mut() = Some(Socket {
            ws,
            _handlers: vec![on_open, on_message, on_close],
        });
    }

    fn close_socket(&self) {
        if let Some(s) = self.socket.borrow_mut().take() {
            s.ws.set_onopen(None);
            s.ws.set_onmessage(None);
            s.ws.set_onclose(None);
            let _ = s.ws.close();
        }
    }

    /// One timer, at the engine's earliest deadline.
    fn arm_timer(&self) {
        if let Some((handle, _)) = self.timer.borrow_mut().take() {
            if let Some(clear) = global_fn("clearTimeout") {
                let _ = clear.call1(&JsValue::NULL, &handle);
            }
        }
        let deadline = self.engine.borrow().as_ref().and_then(|e| e.poll_timeout());
        let (Some(deadline), Some(set)) = (deadline, global_fn("setTimeout")) else {
            return;
        };
        let delay = deadline.saturating_sub(now()) as f64;
        let me = self.me.clone();
        let fire = Closure::<dyn FnMut()>::new(move || {
            let Some(d) = me.upgrade() else { return };
            d.timer.borrow_mut().take();
            if let Some(engine) = d.engine.borrow_mut().as_mut() {
                engine.handle_timeout(now());
            }
            d.drain();
        });
        if let Ok(handle) = set.call2(&JsValue::NULL, fire.as_ref(), &delay.into()) {
            *self.timer.borrow_mut() = Some((handle, fire));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.close_socket();
        if let Some(window) = web_sys::window() {
            for (name, f) in &self.online {
                let _ =
                    window.remove_event_listener_with_callback(name, f.as_ref().unchecked_ref());
            }
        }
    }
}

fn local_error(e: JsCodedError) -> SyncError {
    SyncError::Local {
        code: e.code,
        message: e.message,
    }
}

fn ws_base(http: &str) -> String {
    match http.strip_prefix("http") {
        Some(rest) => format!("ws{rest}"),
        None => http.to_owned(),
    }
}

/// The window's `online` / `offline` events (none in a worker).
fn online_listeners(me: &Weak<Driver>) -> Vec<Listener> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    [("online", true), ("offline", false)]
        .into_iter()
        .map(|(name, online)| {
            let me = me.clone();
            let f = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(d) = me.upgrade() {
                    d.feed(Input::Online(online));
                }
            });
            let _ = window.add_event_listener_with_callback(name, f.as_ref().unchecked_ref());
            (name, f)
        })
        .collect()
}

/// Sends one request with gloo-net; `Err` when no answer came (network, CORS, timeout).
async fn send(url: &str, req: HttpRequest) -> Result<HttpAnswer, String> {
    let controller = web_sys::AbortController::new().map_err(|_| "AbortController".to_owned())?;
    let abort = Closure::once({
        let controller = controller.clone();
        move || controller.abort()
    });
    let timer = global_fn("setTimeout").and_then(|set| {
        set.call2(&JsValue::NULL, abort.as_ref(), &REQUEST_TIMEOUT_MS.into())
            .ok()
    });
    let builder = match req.method {
        HttpMethod::Get => Request::get(url),
        HttpMethod::Post => Request::post(url),
    }
    .query(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    .header("Authorization", &format!("Bearer {}", req.token))
    .abort_signal(Some(&controller.signal()));
    let request = match req.body {
        Some(body) => builder
            .header("Content-Type", "application/json")
            .body(body),
        None => builder.build(),
    }
    .map_err(|e| e.to_string())?;
    let result = async {
        let resp = request.send().await.map_err(|e| e.to_string())?;
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|h| parse_retry_after(&h));
        let status = resp.status();
        // Bytes, not text: copied into wasm as they are, not transcoded from UTF-16.
        let bytes = resp.binary().await.map_err(|e| e.to_string())?;
        // Not UTF-8: kept lossy, so that parsing it fails as a protocol_error.
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Ok(HttpAnswer {
            status,
            retry_after,
            body,
        })
    }
    .await;
    if let (Some(handle), Some(clear)) = (timer, global_fn("clearTimeout")) {
        let _ = clear.call1(&JsValue::NULL, &handle);
    }
    result
}
