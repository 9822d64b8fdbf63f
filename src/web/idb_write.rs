//! The hot paths on a raw `IDBDatabase` connection: every write of a batch is issued
//! synchronously (no per-request future or closure) and only the transaction's completion is
//! awaited, besides the reads a write transaction makes first; bulk reads come in pipelined
//! chunks. Opening, upgrading and single reads are in `idb`.

use crate::error_code::ErrorCode;
use futures::channel::mpsc::UnboundedReceiver;
use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::error::JsCodedError;
use super::event_loop::Slicer;

pub(super) fn dom_error(e: JsValue) -> JsCodedError {
    let name = js_sys::Reflect::get(&e, &"name".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    let message = js_sys::Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    // Firefox refuses the first write transaction after one that aborted over quota with an
    // InvalidStateError ("… a database that did not allow mutations"), room or not; the next
    // one runs. Our write transactions are readwrite, so this is the quota, not a read-only one.
    let code = if name == "QuotaExceededError" || message.contains("did not allow mutations") {
        ErrorCode::QuotaExceeded
    } else {
        ErrorCode::Storage
    };
    let detail = if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    };
    JsCodedError::new(code, format!("IndexedDB {detail}"))
}

/// A promise of the request's outcome; attach it before control returns to the event loop.
pub(super) fn on_settled(req: &IdbRequest) -> Promise {
    Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    })
}

/// Waits for [`on_settled`]'s promise; a failed request becomes its coded DOM error.
pub(super) async fn settled(req: &IdbRequest, done: Promise) -> Result<(), JsCodedError> {
    JsFuture::from(done).await.map_err(|_| {
        dom_error(
            req.error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or(JsValue::NULL),
        )
    })?;
    Ok(())
}

/// The last put of a chunk still being stored (see [`WriteTx::put_all_in_flight`]).
pub struct InFlight {
    req: IdbRequest,
    done: Promise,
}

impl InFlight {
    /// Whether IndexedDB has yet to store it (waiting for it then yields to the event loop).
    pub fn is_pending(&self) -> bool {
        self.req.ready_state() == web_sys::IdbRequestReadyState::Pending
    }
}

/// Paces a long run of put chunks in one transaction. Every [`SLICE_MS`](super::event_loop::SLICE_MS) of main-thread work
/// it waits for a chunk still being stored — the one before the latest when IndexedDB is not
/// done with it, so that IndexedDB stays busy meanwhile. That ends the task (the page stays
/// responsive) while the transaction stays active, since a request of it is pending.
pub struct Pacer {
    previous: Option<InFlight>,
    latest: Option<InFlight>,
    slice: Slicer,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            previous: None,
            latest: None,
            slice: Slicer::new(),
        }
    }

    /// Notes the last put of a chunk just issued.
    pub fn issued(&mut self, chunk: Option<InFlight>) {
        if chunk.is_some() {
            self.previous = std::mem::replace(&mut self.latest, chunk);
        }
    }

    /// Yields if this slice has used its time; with no put in flight, by a read of `store`.
    pub async fn breathe(&mut self, tx: &WriteTx, store: &str) -> Result<(), JsCodedError> {
        if !self.slice.due() {
            return Ok(());
        }
        let wait = match self.previous.take() {
            Some(p) if p.is_pending() => Some(p),
            _ => self.latest.take(),
        };
        match wait {
            Some(chunk) => tx.stored(chunk).await?,
            None => {
                tx.count_between(store, "", "").await?;
            }
        }
        self.slice.restart();
        Ok(())
    }

    /// Waits for the last chunk issued.
    pub async fn drain(self, tx: &WriteTx) -> Result<(), JsCodedError> {
        match self.latest {
            Some(last) => tx.stored(last).await,
            None => Ok(()),
        }
    }
}

/// A readwrite transaction whose requests are issued without awaiting each. Dropped without
/// `commit` (an error half-way through a batch), it aborts: IndexedDB would otherwise commit
/// the requests already issued once control returns to the event loop.
pub struct WriteTx {
    tx: IdbTransaction,
    done: Option<Promise>,
}

impl WriteTx {
    pub fn begin(db: &IdbDatabase, stores: &[&str]) -> Result<WriteTx, JsCodedError> {
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let tx = db
            .transaction_with_str_sequence_and_mode(&names, IdbTransactionMode::Readwrite)
            .map_err(dom_error)?;
        let done = Promise::new(&mut |resolve, reject| {
            tx.set_oncomplete(Some(&resolve));
            tx.set_onabort(Some(&reject));
        });
        Ok(WriteTx {
            tx,
            done: Some(done),
        })
    }

    pub fn put_all(&self, store: &str, values: &Array) -> Result<(), JsCodedError> {
        self.put_each(store, values).map(|_| ())
    }

    /// [`WriteTx::put_all`], returning the chunk's last put to wait for with
    /// [`WriteTx::stored`]. Waiting for the chunk *before* this one, not this one, keeps
    /// IndexedDB busy storing while the next chunk is prepared.
    pub fn put_all_in_flight(
        &self,
        store: &str,
        values: &Array,
    ) -> Result<Option<InFlight>, JsCodedError> {
        Ok(self.put_each(store, values)?.map(|req| InFlight {
            done: on_settled(&req),
            req,
        }))
    }

    /// Issues one put per value; the last request, if any.
    fn put_each(&self, store: &str, values: &Array) -> Result<Option<IdbRequest>, JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        let mut last = None;
        for v in values.iter() {
            last = Some(s.put(&v).map_err(|e| self.abort_with(e))?);
        }
        Ok(last)
    }

    /// Waits until a chunk of puts is stored: the event loop runs meanwhile (the page stays
    /// responsive) and the transaction stays active, since a request of it is pending.
    pub async fn stored(&self, chunk: InFlight) -> Result<(), JsCodedError> {
        settled(&chunk.req, chunk.done)
            .await
            .map_err(|e| self.cause(e))
    }

    /// How many records of `store` have a key in `[lower, upper]`.
    pub async fn count_between(
        &self,
        store: &str,
        lower: &str,
        upper: &str,
    ) -> Result<u32, JsCodedError> {
        let range =
            web_sys::IdbKeyRange::bound(&JsValue::from_str(lower), &JsValue::from_str(upper))
                .map_err(dom_error)?;
        let v = self.read(store, |s| s.count_with_key(&range)).await?;
        Ok(v.as_f64().unwrap_or(0.0) as u32)
    }

    pub fn put(&self, store: &str, value: &JsValue) -> Result<(), JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        s.put(value).map_err(|e| self.abort_with(e))?;
        Ok(())
    }

    pub fn add(&self, store: &str, value: &JsValue) -> Result<(), JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        s.add(value).map_err(|e| self.abort_with(e))?;
        Ok(())
    }

    /// Puts `value` under an out-of-line `key` (the pending queue's rows).
    pub fn put_at(&self, store: &str, value: &JsValue, key: f64) -> Result<(), JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        s.put_with_key(value, &JsValue::from_f64(key))
            .map_err(|e| self.abort_with(e))?;
        Ok(())
    }

    pub fn delete(&self, store: &str, key: f64) -> Result<(), JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        s.delete(&JsValue::from_f64(key))
            .map_err(|e| self.abort_with(e))?;
        Ok(())
    }

    /// Reads many records inside this transaction: every `get` is issued at once and only the
    /// last is awaited (a transaction's requests complete in order). `undefined` where absent.
    pub async fn get_many(&self, store: &str, keys: &[&str]) -> Result<Array, JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        let mut reqs = Vec::with_capacity(keys.len());
        for key in keys {
            reqs.push(
                s.get(&JsValue::from_str(key))
                    .map_err(|e| self.abort_with(e))?,
            );
        }
        if let Some(last) = reqs.last() {
            let done = on_settled(last);
            settled(last, done).await.map_err(|e| self.cause(e))?;
        }
        reqs.iter().map(|r| r.result().map_err(dom_error)).collect()
    }

    /// Reads inside this transaction, so that a read-modify-write is one step: a writer that
    /// starts meanwhile waits for this transaction and then reads what it wrote. Keep issuing
    /// requests right after it returns (no other await), or the transaction ends.
    pub async fn get(&self, store: &str, key: &str) -> Result<JsValue, JsCodedError> {
        self.read(store, |s| s.get(&JsValue::from_str(key))).await
    }

    /// Every record of a store, read inside this transaction (see [`WriteTx::get`]).
    pub async fn get_all(&self, store: &str) -> Result<Array, JsCodedError> {
        Ok(self.read(store, |s| s.get_all()).await?.unchecked_into())
    }

    /// Every record of a store with its key, read inside this transaction `chunk` records at
    /// a time, so that the browser turns each chunk into JS objects in a task of its own;
    /// `on_chunk(keys, values)` gets each chunk as it comes, in that task.
    pub async fn get_all_chunked(
        &self,
        store: &str,
        chunk: u32,
        on_chunk: &mut dyn FnMut(Array, Array) -> Result<(), JsCodedError>,
    ) -> Result<(), JsCodedError> {
        let mut range = JsValue::NULL; // every key, then those after the last one read
        loop {
            // Both issued at once (one round trip); requests of a transaction complete in order.
            let values = self.issue(store, |s| s.get_all_with_key_and_limit(&range, chunk))?;
            let keys = self.issue(store, |s| s.get_all_keys_with_key_and_limit(&range, chunk))?;
            // Both awaited before either error counts: a promise left behind would reject
            // unheard when the transaction aborts.
            let (values, keys) = futures::join!(self.finish(values), self.finish(keys));
            let (values, keys): (Array, Array) = (values?.unchecked_into(), keys?.unchecked_into());
            let n = keys.length();
            if n == 0 {
                return Ok(());
            }
            range = web_sys::IdbKeyRange::lower_bound_with_open(&keys.get(n - 1), true)
                .map_err(dom_error)?
                .into();
            on_chunk(keys, values)?;
            if n < chunk {
                return Ok(());
            }
        }
    }

    async fn read(
        &self,
        store: &str,
        issue: impl FnOnce(&web_sys::IdbObjectStore) -> Result<IdbRequest, JsValue>,
    ) -> Result<JsValue, JsCodedError> {
        let issued = self.issue(store, issue)?;
        self.finish(issued).await
    }

    /// Issues a read; [`Self::finish`] awaits its result.
    fn issue(
        &self,
        store: &str,
        issue: impl FnOnce(&web_sys::IdbObjectStore) -> Result<IdbRequest, JsValue>,
    ) -> Result<(IdbRequest, Promise), JsCodedError> {
        let s = self.tx.object_store(store).map_err(dom_error)?;
        let req = issue(&s).map_err(|e| self.abort_with(e))?;
        let done = on_settled(&req);
        Ok((req, done))
    }

    async fn finish(&self, (req, done): (IdbRequest, Promise)) -> Result<JsValue, JsCodedError> {
        settled(&req, done).await.map_err(|e| self.cause(e))?;
        req.result().map_err(dom_error)
    }

    /// A read that failed because an earlier request aborted the transaction reports that
    /// request's error (e.g. `quota_exceeded`), not its own `AbortError`.
    fn cause(&self, e: JsCodedError) -> JsCodedError {
        match self.tx.error() {
            Some(err) => dom_error(err.into()),
            None => e,
        }
    }

    fn abort_with(&self, e: JsValue) -> JsCodedError {
        let _ = self.tx.abort();
        dom_error(e)
    }

    /// Waits until IndexedDB has committed the transaction (it does once its last request
    /// succeeded); an abort (failed request, quota) is an error.
    ///
    /// No explicit `IDBTransaction.commit()`: in Firefox (ESR 153), a transaction told to
    /// commit after it awaited a read no longer aborts when a later request fails — it
    /// completes with the other writes (a record without its pending change, half a batch
    /// over quota) — and one that did abort reports `AbortError`, not the cause.
    pub async fn commit(mut self) -> Result<(), JsCodedError> {
        let done = self.done.take().expect("a WriteTx commits once");
        JsFuture::from(done).await.map_err(|_| {
            let err = self.tx.error().map(JsValue::from).unwrap_or(JsValue::NULL);
            if err.is_null() {
                JsCodedError::new(ErrorCode::Storage, "IndexedDB transaction aborted")
            } else {
                dom_error(err)
            }
        })?;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.done.is_some() {
            // Nobody awaits `done` any more: unhook it so the abort is no unhandled rejection.
            self.tx.set_oncomplete(None);
            self.tx.set_onabort(None);
            let _ = self.tx.abort();
        }
    }
}

/// Reads a whole object store in key order, `chunk` records at a time, in one readonly
/// transaction. The request for the next chunk is issued as soon as a chunk arrives, so the
/// browser reads it while the caller processes this one.
pub struct ChunkedRead {
    store: web_sys::IdbObjectStore,
    /// The store's keyPath: the property of the last record the next chunk starts after.
    key_path: JsValue,
    chunk: u32,
    pending: Option<(IdbRequest, Promise)>,
}

impl ChunkedRead {
    pub fn begin(db: &IdbDatabase, store: &str, chunk: u32) -> Result<ChunkedRead, JsCodedError> {
        let tx = db
            .transaction_with_str_and_mode(store, web_sys::IdbTransactionMode::Readonly)
            .map_err(dom_error)?;
        let store = tx.object_store(store).map_err(dom_error)?;
        // The next chunk starts after the last record's key, read as a top-level property.
        let key_path = match store.key_path().ok().and_then(|p| p.as_string()) {
            Some(p) if !p.is_empty() && !p.contains('.') => JsValue::from(p),
            _ => {
                return Err(JsCodedError::new(
                    ErrorCode::Internal,
                    "chunked reads need a plain keyPath",
                ))
            }
        };
        let mut read = ChunkedRead {
            store,
            key_path,
            chunk,
            pending: None,
        };
        read.request(None)?;
        Ok(read)
    }

    fn request(&mut self, after: Option<&JsValue>) -> Result<(), JsCodedError> {
        let range = match after {
            None => JsValue::NULL,
            Some(key) => web_sys::IdbKeyRange::lower_bound_with_open(key, true)
                .map_err(dom_error)?
                .into(),
        };
        let req = self
            .store
            .get_all_with_key_and_limit(&range, self.chunk)
            .map_err(dom_error)?;
        let done = on_settled(&req);
        self.pending = Some((req, done));
        Ok(())
    }

    /// Reads every chunk in a task of its own, as fast as IndexedDB gives them, into the
    /// returned channel: the consumer may then yield to the event loop between chunks (the
    /// transaction would commit if no request were pending when it came back).
    pub fn read_ahead(mut self) -> UnboundedReceiver<Result<Array, JsCodedError>> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let next = self.next().await;
                let end = !matches!(next, Ok(Some(_)));
                if let Some(chunk) = next.transpose() {
                    if tx.unbounded_send(chunk).is_err() {
                        return;
                    }
                }
                if end {
                    return;
                }
            }
        });
        rx
    }

    /// The next chunk of records, or `None` after the last one. Call it again without awaiting
    /// anything else in between: the following request is issued while this one's success
    /// event keeps the transaction active, and the transaction ends once nothing is pending.
    pub async fn next(&mut self) -> Result<Option<Array>, JsCodedError> {
        let Some((req, done)) = self.pending.take() else {
            return Ok(None);
        };
        settled(&req, done).await?;
        let rows: Array = req.result().map_err(dom_error)?.unchecked_into();
        if rows.length() == self.chunk {
            // Still inside the success event, while the transaction is active.
            let last = rows.get(self.chunk - 1);
            let key = js_sys::Reflect::get(&last, &self.key_path)
                .ok()
                .filter(|k| !k.is_undefined())
                .ok_or_else(|| {
                    JsCodedError::new(ErrorCode::Internal, "a record without its key")
                })?;
            self.request(Some(&key))?;
        }
        Ok(if rows.length() == 0 { None } else { Some(rows) })
    }
}

/// Every key and value of a store (in key order), read in one readonly transaction.
pub async fn read_all_with_keys(
    db: &IdbDatabase,
    store: &str,
) -> Result<(Array, Array), JsCodedError> {
    let tx = db
        .transaction_with_str_and_mode(store, web_sys::IdbTransactionMode::Readonly)
        .map_err(dom_error)?;
    let s = tx.object_store(store).map_err(dom_error)?;
    let keys = s.get_all_keys().map_err(dom_error)?;
    let values = s.get_all().map_err(dom_error)?;
    let keys_done = on_settled(&keys);
    let values_done = on_settled(&values);
    settled(&keys, keys_done).await?;
    settled(&values, values_done).await?;
    Ok((
        keys.result().map_err(dom_error)?.unchecked_into(),
        values.result().map_err(dom_error)?.unchecked_into(),
    ))
}
