// One client page of the browser fault cases (faults.test.mjs), opened as
// client.html?server=URL&user=ID&db=NAME[&start=0]. Exposes `window.client` for the test, and
// raw reads of the IndexedDB database for what the API does not show (pending rows, cursors).
import init, { ManaStore } from "../../pkg/mana_sync.js";

const params = new URLSearchParams(location.search);
const server = params.get("server");
const user = params.get("user");
const db = params.get("db");
const APPS = { fault: { collections: { notes: { indexes: [] } } } };

async function token() {
  const r = await fetch(`${server}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: user }),
  });
  return (await r.json()).token;
}

/** Every value of one object store of the database, read without the library. */
function rawAll(storeName, method = "getAll") {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(db);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const conn = open.result;
      const req = conn.transaction(storeName).objectStore(storeName)[method]();
      req.onsuccess = () => { conn.close(); resolve(req.result); };
      req.onerror = () => { conn.close(); reject(req.error); };
    };
  });
}

/** `n` random characters that do not compress (IndexedDB may compress values it stores). */
function noise(n) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  let s = "";
  for (let i = 0; i < n; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192).map((b) => 0x20 + (b % 0xe0)));
  return s;
}

/** Another database of this origin holding `bytes` of noise: room taken that can be freed. */
function filler(bytes) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("filler", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("blobs");
    open.onsuccess = () => {
      const conn = open.result;
      const tx = conn.transaction("blobs", "readwrite");
      const chunk = 1024 * 1024;
      for (let i = 0; i < bytes; i += chunk) {
        const b = new Uint8Array(Math.min(chunk, bytes - i));
        for (let j = 0; j < b.length; j += 65536) crypto.getRandomValues(b.subarray(j, j + 65536));
        tx.objectStore("blobs").put(b, i);
      }
      tx.oncomplete = () => { conn.close(); resolve(); };
      tx.onabort = () => { conn.close(); reject(tx.error); };
    };
    open.onerror = () => reject(open.error);
  });
}

function dropFiller() {
  return new Promise((resolve, reject) => {
    const del = indexedDB.deleteDatabase("filler");
    del.onsuccess = () => resolve();
    del.onerror = () => reject(del.error);
  });
}

const coded = async (f) => {
  try {
    await f();
    return null;
  } catch (e) {
    return { code: e.code ?? null, name: e.name, message: String(e.message ?? e), isError: e instanceof Error };
  }
};

try {
  await init();
  const store = await ManaStore.open({ name: db, userId: user, apps: APPS });
  const tok = server ? await token() : null;
  const sync = server ? store.sync({ url: server, token: () => tok }) : null;
  const statuses = [];
  sync?.on("status", (s) => statuses.push(s));
  if (sync && params.get("start") !== "0") sync.start();
  window.client = {
    store,
    sync,
    statuses,
    status: () => sync?.status,
    put: (id, title, size = 0) => coded(() => store.put("notes", { id, title, body: noise(size) })),
    bulkPut: (prefix, n, size = 0) =>
      coded(() => store.bulkPut("notes", Array.from({ length: n }, (_, i) => (
        { id: `${prefix}-${i}`, title: `${prefix} ${i}`, body: noise(size) })))),
    remove: (id) => coded(() => store.delete("notes", id)),
    get: (id) => store.get("notes", id),
    list: async () => (await store.list("notes", { includeDeleted: true })).map((r) => r.id),
    pending: () => store.pendingCount(),
    syncNow: () => coded(() => sync.syncNow()),
    start: () => sync.start(),
    /** Every pending change, in queue order, as stored (eventId, id, updatedAt). */
    rawPending: async () => (await rawAll("_pendingChanges")).flatMap((row) =>
      (typeof row.changes === "string" ? JSON.parse(row.changes) : row.changes)),
    rawCursors: () => rawAll("_syncMeta"),
    /** id → the HLC of its `title` in `__fieldMeta` as stored (docs/client.md: `[default, overrides]`). */
    rawTitleAt: async () => Object.fromEntries((await rawAll("notes")).map((r) => {
      const m = typeof r.__fieldMeta === "string" ? JSON.parse(r.__fieldMeta) : r.__fieldMeta;
      return [r.id, Array.isArray(m) ? (m[1]?.title ?? m[0])?.at : m?.title?.at];
    })),
    rawCount: () => rawAll("notes", "count"),
    estimate: () => navigator.storage.estimate(),
    filler,
    dropFiller,
  };
  window.clientReady = true;
} catch (e) {
  window.clientError = `${e.code ?? ""} ${e.message ?? e}`;
}
