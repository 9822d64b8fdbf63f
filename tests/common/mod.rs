//! Helpers shared by the headless-Chromium suites.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub fn js(v: Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

pub fn rs(v: &JsValue) -> Value {
    if v.is_undefined() {
        return Value::Null;
    }
    serde_json::from_str(&js_sys::JSON::stringify(v).unwrap().as_string().unwrap()).unwrap()
}

/// Awaits a promise that must resolve.
pub async fn ok_js(p: js_sys::Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise resolves")
}

/// Awaits a promise that must resolve, as JSON.
pub async fn ok(p: js_sys::Promise) -> Value {
    rs(&ok_js(p).await)
}

/// Awaits a promise that must reject with a real `Error`, returning its `.code`.
pub async fn code(p: js_sys::Promise) -> String {
    let err = JsFuture::from(p).await.expect_err("promise rejects");
    assert!(err.is_instance_of::<js_sys::Error>(), "a real Error");
    js_sys::Reflect::get(&err, &"code".into())
        .unwrap()
        .as_string()
        .unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", js_sys::Math::random().to_bits())
}

pub async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

/// Records every value a live query delivers.
pub struct Collector {
    pub seen: Rc<RefCell<Vec<Value>>>,
    callback: Closure<dyn FnMut(JsValue)>,
}

impl Collector {
    pub fn new() -> Collector {
        let seen: Rc<RefCell<Vec<Value>>> = Rc::default();
        let sink = seen.clone();
        let callback =
            Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| sink.borrow_mut().push(rs(&v)));
        Collector { seen, callback }
    }

    pub fn function(&self) -> js_sys::Function {
        self.callback
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone()
    }

    /// Waits (up to 2 s) until the latest delivered value satisfies `pred`.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        for _ in 0..200 {
            if self.seen.borrow().last().is_some_and(&pred) {
                return;
            }
            sleep(10).await;
        }
        panic!(
            "live query never delivered {what}: {:?}",
            self.seen.borrow()
        );
    }
}
