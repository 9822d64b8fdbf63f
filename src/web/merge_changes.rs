//! `mergeChanges(changes)`: folds wire changes of one record through the shared LWW merge.

use crate::error_code::ErrorCode;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::error::JsCodedError;
use super::json::{from_js, to_js};
use crate::merge::{apply, RecordState};
use crate::protocol::Change;

/// Validates and applies `changes` (all of one record, in any order) and returns the merged
/// record, its per-field metadata and the conflicts found along the way.
#[wasm_bindgen(js_name = mergeChanges, unchecked_return_type = "MergeResult")]
pub fn merge_changes(
    #[wasm_bindgen(unchecked_param_type = "Change[]")] changes: JsValue,
) -> Result<JsValue, JsValue> {
    let changes: Vec<Change> = from_js(&changes, ErrorCode::InvalidChange)?;
    let Some(first) = changes.first() else {
        return Err(JsCodedError::new(ErrorCode::InvalidChange, "no changes given").into());
    };
    let id = first.id.clone();
    let mut state = RecordState::default();
    let mut conflicts = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        c.validate()
            .map_err(|e| JsCodedError::new(e.code(), format!("change {i}: {e}")))?;
        if c.id != id {
            return Err(JsCodedError::new(
                ErrorCode::InvalidChange,
                format!("change {i} is of another record"),
            )
            .into());
        }
        let (next, found) = apply(state, c).map_err(JsCodedError::from)?;
        state = next;
        conflicts.extend(found);
    }
    let out = MergeResult {
        record: state.to_record(&id),
        field_meta: state.field_meta(),
        conflicts,
    };
    Ok(to_js(&out)?)
}

/// What `mergeChanges` returns.
#[derive(Serialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct MergeResult {
    #[tsify(type = "Record<string, unknown> & { id: string }")]
    record: serde_json::Map<String, serde_json::Value>,
    #[tsify(type = "Record<string, FieldMeta>")]
    field_meta: serde_json::Map<String, serde_json::Value>,
    conflicts: Vec<crate::protocol::Conflict>,
}
