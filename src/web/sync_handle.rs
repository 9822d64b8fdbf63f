//! `ManaSync`: the handle `store.sync(options)` returns (docs/sync.md).

use crate::collect::CollectInserted;
use crate::error_code::ErrorCode;
use std::collections::BTreeMap;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::JsCodedError;
use super::store::{ManaStore, StoreInner};
use super::sync::SyncConfig;
use super::tab_sync::TabSync;
use crate::sync::lease::{EventKind, LeaseInput, STATUS_EVENT};

#[wasm_bindgen(typescript_custom_section)]
const TS_SYNC: &'static str = r#"
/** A field this device wrote that a newer remote write overwrote; values decrypted. */
export interface SyncConflict extends Conflict {}

/** What each `ManaSync.on(event, callback)` event hands its callback. */
export interface SyncEvents {
    /** The new status. */
    status: SyncStatus;
    conflict: SyncConflict;
    change: SyncChange;
}

export interface ManaSync {
    /**
     * Subscribes to `"status"`, `"conflict"` or `"change"` (`SyncEvents`). Returns the
     * unsubscribe function (a second call does nothing).
     */
    on<E extends keyof SyncEvents>(event: E, callback: (value: SyncEvents[E]) => void): () => void;
}
"#;

/// `store.sync(options)`'s options, as declared in the `.d.ts` and parsed (`token` is read by
/// hand: a function does not survive `JSON.stringify`).
#[derive(serde::Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
struct SyncOptions {
    /// Base URL of mana-sync-server, e.g. `https://sync.example.com`.
    url: String,
    /// The user's bearer token, or `null` when signed out (status `local`). Called again with
    /// `refresh = true` after the server refused the last one.
    #[tsify(type = "(refresh?: boolean) => Promise<string | null> | string | null")]
    #[allow(dead_code)]
    token: Option<serde::de::IgnoredAny>,
    /// Apps to sync (default: every app of the store).
    #[tsify(optional)]
    apps: Option<Vec<String>>,
    /// Keep a WebSocket open for live updates (default true).
    #[tsify(optional)]
    live: Option<bool>,
}

fn invalid(message: impl Into<String>) -> JsCodedError {
    JsCodedError::new(ErrorCode::InvalidOptions, message)
}

/// Reads `store.sync(options)`.
pub(crate) fn parse_options(
    store: &StoreInner,
    options: &JsValue,
) -> Result<SyncConfig, JsCodedError> {
    if !options.is_object() {
        return Err(invalid("sync: options must be an object { url, token }"));
    }
    let init: SyncOptions = super::json::from_js(options, ErrorCode::InvalidOptions)
        .map_err(|e| invalid(format!("sync: {}", e.message)))?;
    let url = Some(init.url)
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| invalid("sync: url must be an http(s) URL"))?;
    let token: js_sys::Function = js_sys::Reflect::get(options, &"token".into())
        .unwrap_or(JsValue::UNDEFINED)
        .dyn_into()
        .map_err(|_| invalid("sync: token must be a function returning the bearer token"))?;
    let all: BTreeMap<String, Vec<String>> = store
        .config
        .apps
        .iter()
        .map(|(app, cfg)| (app.clone(), cfg.collections.keys().cloned().collect()))
        .collect_inserted();
    let apps = match init.apps {
        None => all,
        Some(names) => {
            let mut chosen = BTreeMap::new();
            for name in names {
                let collections = all
                    .get(&name)
                    .ok_or_else(|| invalid(format!("sync: unknown app {name:?}")))?;
                chosen.insert(name, collections.clone());
            }
            chosen
        }
    };
    Ok(SyncConfig {
        url,
        token,
        apps,
        live: init.live.unwrap_or(true),
    })
}

/// Syncs a store with mana-sync-server. Create with `store.sync(options)`.
#[wasm_bindgen]
pub struct ManaSync {
    tab: Rc<TabSync>,
}

impl ManaSync {
    pub(crate) fn new(
        store: Rc<StoreInner>,
        options: SyncConfig,
    ) -> Result<ManaSync, JsCodedError> {
        Ok(ManaSync {
            tab: TabSync::new(store, options)?,
        })
    }
}

#[wasm_bindgen]
impl ManaSync {
    /// Syncs automatically from now on: pushes shortly after every write, listens for remote
    /// changes, retries with backoff, resumes at once when the browser is back online. Of the
    /// tabs that started, one (the leader) does the network side for all of them.
    pub fn start(&self) {
        self.tab.feed(LeaseInput::Start);
    }

    /// Stops automatic sync in this tab (the answer in flight is still applied; a leader hands
    /// over to another started tab). Pending changes stay.
    pub fn stop(&self) {
        self.tab.feed(LeaseInput::Stop);
    }

    /// Resolves once everything pending at the call is acknowledged and every collection was
    /// pulled to the end; rejects with a coded `Error` (`network`, `unauthorized`, …).
    #[wasm_bindgen(js_name = syncNow, unchecked_return_type = "Promise<void>")]
    pub fn sync_now(&self) -> js_sys::Promise {
        self.tab.sync_now()
    }

    #[wasm_bindgen(getter, unchecked_return_type = "SyncStatus")]
    pub fn status(&self) -> String {
        self.tab.status().as_str().to_owned()
    }

    /// Whether this tab runs the network side of sync: the leader of the started tabs, or
    /// any started tab where Web Locks are missing.
    #[wasm_bindgen(getter, js_name = isLeader)]
    pub fn is_leader(&self) -> bool {
        self.tab.is_leader()
    }

    /// Subscribes to `"status"` (the new status), `"conflict"` (`SyncConflict`) or `"change"`
    /// (`SyncChange`). Returns the unsubscribe function. Declared in `TS_SYNC` (generic over
    /// `SyncEvents`, which wasm-bindgen cannot write).
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: String, callback: js_sys::Function) -> Result<JsValue, JsValue> {
        let kind = match event.as_str() {
            STATUS_EVENT => STATUS_EVENT,
            other => match EventKind::from_name(other) {
                Some(kind) => kind.as_str(),
                None => return Err(invalid(format!("unknown sync event {other:?}")).into()),
            },
        };
        Ok(self.tab.on(kind, callback))
    }
}

#[wasm_bindgen]
impl ManaStore {
    /// Syncs this store with mana-sync-server (see `ManaSync`). Nothing happens until
    /// `start()` or `syncNow()`.
    pub fn sync(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SyncOptions")] options: JsValue,
    ) -> Result<ManaSync, JsValue> {
        let options = parse_options(&self.inner, &options)?;
        Ok(ManaSync::new(self.inner.clone(), options)?)
    }
}
