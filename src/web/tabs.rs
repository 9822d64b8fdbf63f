//! Cross-tab change notification: every committed write posts its collection on a
//! `BroadcastChannel` named after the database, so live queries in other tabs (and other
//! stores on the same database) re-run too.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BroadcastChannel, MessageEvent};

pub struct TabChannel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl TabChannel {
    /// Calls `on_change(collection)` for every write another tab announces. `None` where
    /// BroadcastChannel is unavailable: only cross-tab updates are lost.
    pub fn open(db_name: &str, on_change: impl Fn(&str) + 'static) -> Option<TabChannel> {
        let channel = BroadcastChannel::new(&format!("mana-sync:{db_name}")).ok()?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(collection) = e.data().as_string() {
                on_change(&collection);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(TabChannel {
            channel,
            _on_message: on_message,
        })
    }

    pub fn announce(&self, collection: &str) {
        let _ = self.channel.post_message(&JsValue::from_str(collection));
    }

    pub fn close(&self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
