//! `HybridClock`: the HLC of `clock.rs`, driven by the browser's wall clock.

use wasm_bindgen::prelude::*;

use super::error::JsCodedError;
use crate::clock::{node_id_from_client_id, Clock, Hlc};

#[wasm_bindgen]
pub struct HybridClock {
    inner: Clock,
}

#[wasm_bindgen]
impl HybridClock {
    /// A clock whose node id is derived from `clientId`.
    #[wasm_bindgen(constructor)]
    pub fn new(client_id: &str) -> HybridClock {
        HybridClock {
            inner: Clock::new(node_id_from_client_id(client_id)),
        }
    }

    /// Issues a timestamp greater than every one issued or observed so far.
    #[wasm_bindgen(unchecked_return_type = "Hlc")]
    pub fn now(&mut self) -> Result<String, JsValue> {
        let wall = js_sys::Date::now() as u64;
        Ok(self
            .inner
            .now(wall)
            .map_err(JsCodedError::from)?
            .to_string())
    }

    /// Takes a remote timestamp into account. Throws `invalid_timestamp` for a malformed one.
    pub fn observe(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Hlc")] remote: &str,
    ) -> Result<(), JsValue> {
        let hlc = Hlc::parse(remote).map_err(JsCodedError::from)?;
        self.inner.observe(&hlc);
        Ok(())
    }
}
