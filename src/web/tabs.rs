//! A `BroadcastChannel` of text messages between the tabs of one database. The store posts
//! every committed write's collection on one (live queries in other tabs re-run); sync posts
//! its lease messages on another.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BroadcastChannel, MessageEvent};

pub struct TabChannel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl TabChannel {
    /// Calls `on_message(text)` for every message another tab posts on channel `name`.
    /// `None` where BroadcastChannel is unavailable: only cross-tab messages are lost.
    pub fn open(name: &str, on_message: impl Fn(&str) + 'static) -> Option<TabChannel> {
        let channel = BroadcastChannel::new(name).ok()?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(text) = e.data().as_string() {
                on_message(&text);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(TabChannel {
            channel,
            _on_message: on_message,
        })
    }

    pub fn post(&self, text: &str) {
        let _ = self.channel.post_message(&JsValue::from_str(text));
    }

    pub fn close(&self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
