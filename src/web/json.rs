//! Values cross the boundary as JSON text: one `JSON.stringify` / `JSON.parse` per call (or
//! per batch) is far cheaper than walking objects property by property from wasm.

use crate::error_code::ErrorCode;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

use super::error::JsCodedError;

/// JS value → Rust, via `JSON.stringify` + serde_json. `code` names what was malformed.
pub fn from_js<T: DeserializeOwned>(v: &JsValue, code: ErrorCode) -> Result<T, JsCodedError> {
    let text = stringify(v, code)?;
    serde_json::from_str(&text).map_err(|e| JsCodedError::new(code, e.to_string()))
}

/// Values the store itself read from IndexedDB, as JSON text (`JSON.stringify`).
pub fn js_text(v: &JsValue) -> Result<String, JsCodedError> {
    stringify(v, ErrorCode::Internal)
}

fn stringify(v: &JsValue, code: ErrorCode) -> Result<String, JsCodedError> {
    let text = js_sys::JSON::stringify(v).map_err(|_| {
        JsCodedError::new(code, "value is not JSON-serialisable (cycle or BigInt?)")
    })?;
    text.as_string()
        .ok_or_else(|| JsCodedError::new(code, "value is undefined or a function"))
}

/// Rust → JS value, via serde_json + `JSON.parse`.
pub fn to_js<T: serde::Serialize + ?Sized>(v: &T) -> Result<JsValue, JsCodedError> {
    let text = serde_json::to_string(v)
        .map_err(|e| JsCodedError::new(ErrorCode::Internal, e.to_string()))?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<JsValue, JsCodedError> {
    js_sys::JSON::parse(text)
        .map_err(|_| JsCodedError::new(ErrorCode::Internal, "JSON.parse failed"))
}

/// A thrown JS value as text (an `Error`'s message, else its string form).
pub fn describe(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// A JSON array's text built from its items' text: `[`, the items comma-separated, `]`.
#[derive(Default)]
pub(crate) struct ArrayText {
    text: String,
    len: usize,
}

impl ArrayText {
    pub(crate) fn push(&mut self, item: &str) {
        self.text.push(if self.len == 0 { '[' } else { ',' });
        self.text.push_str(item);
        self.len += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The array's text (`[]` when empty), leaving this one empty.
    pub(crate) fn take(&mut self) -> String {
        let mut text = std::mem::take(&mut self.text);
        if self.len == 0 {
            text.push('[');
        }
        text.push(']');
        self.len = 0;
        text
    }
}
