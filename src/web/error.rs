//! Every error reaching JS is a real `Error` with a stable `.code` (docs/client.md, "Errors").

use crate::error_code::ErrorCode;
use wasm_bindgen::prelude::*;

/// An error code and message, turned into a JS `Error` with `.code` at the boundary.
#[derive(Debug, Clone)]
pub struct JsCodedError {
    pub code: ErrorCode,
    pub message: String,
}

impl JsCodedError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        JsCodedError {
            code,
            message: message.into(),
        }
    }
}

/// A failure that is ours, not the caller's (a value we wrote that does not read back).
pub fn internal(e: impl std::fmt::Display) -> JsCodedError {
    JsCodedError::new(ErrorCode::Internal, e.to_string())
}

impl From<JsCodedError> for JsValue {
    fn from(e: JsCodedError) -> JsValue {
        js_error(e.code.as_str(), &e.message)
    }
}

/// A JS `Error` named `ManaError` with `.code`; also for codes that crossed a tab boundary.
pub fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("ManaError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

macro_rules! coded_from {
    ($($t:ty),*) => {$(
        impl From<$t> for JsCodedError {
            fn from(e: $t) -> Self {
                JsCodedError::new(e.code(), e.to_string())
            }
        }
    )*};
}
coded_from!(
    crate::protocol::ProtocolError,
    crate::clock::ClockError,
    crate::crypto::CryptoError,
    crate::records::RecordError,
    crate::schema::ConfigError,
    crate::backup::BackupError
);
