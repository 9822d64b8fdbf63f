//! `ListQuery`: what `list` and `liveQuery` accept.

use crate::error_code::ErrorCode;
use serde::Deserialize;
use serde_json::Value;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use super::error::JsCodedError;
use super::json::{from_js, to_js};

/// Bounds of an index range; a bound is an IndexedDB key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct KeyBounds {
    #[serde(default)]
    #[tsify(type = "unknown")]
    pub lower: Option<Value>,
    #[serde(default)]
    #[tsify(type = "unknown")]
    pub upper: Option<Value>,
    #[serde(default)]
    pub lower_open: bool,
    #[serde(default)]
    pub upper_open: bool,
}

/// What `list` and `liveQuery` accept.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Index (field) to read through; absent = primary key (`id`).
    #[serde(default)]
    pub index: Option<String>,
    /// Exact key match (shorthand for a range with equal bounds).
    #[serde(default)]
    #[tsify(type = "unknown")]
    pub equals: Option<Value>,
    #[serde(default)]
    pub range: Option<KeyBounds>,
    /// Tombstones are hidden unless set.
    #[serde(default)]
    pub include_deleted: bool,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub reverse: bool,
}

impl ListQuery {
    pub fn from_js(v: &JsValue) -> Result<ListQuery, JsCodedError> {
        if v.is_undefined() || v.is_null() {
            return Ok(ListQuery::default());
        }
        from_js(v, ErrorCode::InvalidQuery)
    }

    pub fn key_range(&self) -> Result<Option<web_sys::IdbKeyRange>, JsCodedError> {
        let bad = |_| {
            JsCodedError::new(
                ErrorCode::InvalidQuery,
                "range bounds must be valid IndexedDB keys",
            )
        };
        if let Some(eq) = &self.equals {
            return Ok(Some(web_sys::IdbKeyRange::only(&to_js(eq)?).map_err(bad)?));
        }
        let Some(r) = &self.range else {
            return Ok(None);
        };
        let range = match (&r.lower, &r.upper) {
            (Some(l), Some(u)) => web_sys::IdbKeyRange::bound_with_lower_open_and_upper_open(
                &to_js(l)?,
                &to_js(u)?,
                r.lower_open,
                r.upper_open,
            ),
            (Some(l), None) => {
                web_sys::IdbKeyRange::lower_bound_with_open(&to_js(l)?, r.lower_open)
            }
            (None, Some(u)) => {
                web_sys::IdbKeyRange::upper_bound_with_open(&to_js(u)?, r.upper_open)
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(range.map_err(bad)?))
    }
}
