// In-browser benchmarks of the wasm store (printed, never asserted). Open through
// `make bench` (headless Chromium) or any static server at the repo root.
import init, { ManaStore, packBackup } from "../../pkg/mana_sync.js";
import Dexie from "../../tools/node_modules/dexie/dist/dexie.mjs";

const RUNS = Number(new URLSearchParams(location.search).get("runs") ?? 5);
const N = 10_000;

function records(n) {
  // ~150 bytes of JSON each.
  return Array.from({ length: n }, (_, i) => ({
    id: `rec-${String(i).padStart(6, "0")}`,
    title: `Note number ${i} about things`,
    content: `Some body text for note ${i}, lorem ipsum dolor.`,
    updatedAt: 1_700_000_000_000 + i,
    pinned: i % 7 === 0,
  }));
}

function deleteDb(name) {
  return new Promise((res) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = () => res(); });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function bulkPutRun(encrypted, run) {
  const name = `bench-${encrypted ? "enc" : "plain"}-${run}-${Math.random()}`;
  const store = await ManaStore.open({
    name, userId: "bench",
    apps: { bench: { collections: { notes: { indexes: ["updatedAt"], encrypted: encrypted ? ["title", "content"] : [] } } } },
  });
  await store.unlock(ManaStore.generateVaultKey());
  const data = records(N);
  const t0 = performance.now();
  await store.bulkPut("notes", data);
  const ms = performance.now() - t0;
  const pending = await store.pendingCount();
  if (pending !== N) throw new Error(`expected ${N} pending changes, got ${pending}`);
  const t1 = performance.now();
  const all = await store.list("notes");
  const listMs = performance.now() - t1;
  if (all.length !== N) throw new Error(`list returned ${all.length}`);
  await store.close();
  await deleteDb(name);
  return { ms, listMs };
}

async function dexieRun(run, withQueue) {
  // Reference points of the issue, measured on the same machine in the same page: Dexie's
  // bulkPut with no pending changes, and with a `creating` hook writing one per record.
  const db = new Dexie(`bench-dexie-${withQueue}-${run}-${Math.random()}`);
  db.version(1).stores({ notes: "id,updatedAt", pending: "++seq" });
  if (withQueue) {
    db.notes.hook("creating", function (key, obj, tx) {
      tx.table("pending").add({ op: "insert", table: "notes", id: obj.id, data: obj, at: Date.now() });
    });
  }
  const data = records(N);
  const t0 = performance.now();
  await db.transaction("rw", db.notes, db.pending, () => db.notes.bulkPut(data));
  const ms = performance.now() - t0;
  db.close();
  await Dexie.delete(db.name);
  return { ms };
}

async function rawIdbRun(run) {
  // Baseline: raw IndexedDB puts of the same records, fired without awaiting each.
  const name = `bench-raw-${run}-${Math.random()}`;
  const db = await new Promise((res, rej) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => r.result.createObjectStore("notes", { keyPath: "id" }).createIndex("updatedAt", "updatedAt");
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error);
  });
  const data = records(N);
  const t0 = performance.now();
  await new Promise((res, rej) => {
    const tx = db.transaction("notes", "readwrite");
    const s = tx.objectStore("notes");
    for (const r of data) s.put(r);
    tx.oncomplete = res;
    tx.onerror = () => rej(tx.error);
  });
  const ms = performance.now() - t0;
  db.close();
  await deleteDb(name);
  return { ms };
}

async function webCryptoRun() {
  // The reference for per-field encryption: one WebCrypto AES-GCM call per field
  // (the wasm envelope's own per-field cost is benches/envelope_web.rs).
  const key = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), "AES-GCM", false, ["encrypt"]);
  const enc = new TextEncoder();
  const fields = records(N).flatMap((r) => [r.title, r.content]);
  const t0 = performance.now();
  await Promise.all(fields.map((v, i) => crypto.subtle.encrypt(
    { name: "AES-GCM", iv: crypto.getRandomValues(new Uint8Array(12)), additionalData: enc.encode(`notes/${i}/f`) },
    key, enc.encode(JSON.stringify(v)))));
  return { ms: performance.now() - t0 };
}

function backupRows(n) {
  // ~200 bytes of JSON each, as the anchor.
  return Array.from({ length: n }, (_, i) => ({
    id: `row-${String(i).padStart(7, "0")}`,
    title: `Backup row ${i} with a short title`,
    content: `Body of row ${i}: the quick brown fox jumps over the lazy dog.`,
    updatedAt: 1_700_000_000_000 + i,
    tags: ["a", "b"],
  }));
}

async function backupRun(run) {
  const rowsN = 100_000;
  const names = [];
  const mk = async (suffix) => {
    names.push(`bench-backup-${suffix}-${run}-${Math.random()}`);
    const s = await ManaStore.open({
      name: names.at(-1), userId: "bench",
      apps: { bench: { collections: { notes: { indexes: ["updatedAt"], encrypted: ["title", "content"] } } } },
    });
    await s.unlock(ManaStore.generateVaultKey());
    return s;
  };
  const src = await mk("src");
  const rows = backupRows(rowsN);
  for (let i = 0; i < rowsN; i += 10_000) await src.bulkPut("notes", rows.slice(i, i + 10_000));
  const t0 = performance.now();
  const bytes = await src.exportBackup({ passphrase: "bench passphrase" });
  const exportMs = performance.now() - t0;
  // The "serialize + deflate + seal" stage, comparable to the JS pipeline (rows as JS
  // objects → JSONL → deflate → PBKDF2 600k → AES-GCM): the same rows through packBackup.
  const tp = performance.now();
  await packBackup({ notes: rows }, { passphrase: "bench passphrase" });
  const stageMs = performance.now() - tp;
  const dst = await mk("dst");
  const t1 = performance.now();
  const report = await dst.importBackup(bytes, { passphrase: "bench passphrase" });
  const importMs = performance.now() - t1;
  if (report.imported !== rowsN) throw new Error(`imported ${report.imported}`);
  await src.close(); await dst.close();
  for (const n of names) await deleteDb(n);
  return { ms: exportMs, stageMs, importMs, archiveBytes: bytes.length };
}

async function main() {
  await init();

  const results = {};
  const cases = {
    "bulkPut 10k, 2 encrypted fields, with pending changes": (r) => bulkPutRun(true, r),
    "bulkPut 10k, no encryption, with pending changes": (r) => bulkPutRun(false, r),
    "raw IndexedDB put 10k, not awaiting each (baseline)": (r) => rawIdbRun(r),
    "Dexie bulkPut 10k, no pending changes (reference)": (r) => dexieRun(r, false),
    "WebCrypto AES-GCM encrypt of the 10k records' 20k fields, one call each (reference)": () => webCryptoRun(),
    "Dexie bulkPut 10k, creating hook writing each pending change (reference)": (r) => dexieRun(r, true),
    "sealed backup of 100k rows (~200 B): export from the store": (r) => backupRun(r),
  };
  const only = new URLSearchParams(location.search).get("only");
  for (const k of Object.keys(cases)) if (only && !k.includes(only)) delete cases[k];
  // Rounds interleave the cases, so that a slow spell of the machine (IndexedDB compaction,
  // another process) hits every case alike rather than one.
  const all = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const [label, fn] of Object.entries(cases)) all[label].push(await fn(r));
  }
  for (const [label, runs] of Object.entries(all)) {
    results[label] = {
      medianMs: Math.round(median(runs.map((x) => x.ms))),
      runsMs: runs.map((x) => Math.round(x.ms)),
      ...(runs[0].listMs !== undefined ? { listAllMedianMs: Math.round(median(runs.map((x) => x.listMs))) } : {}),
      ...(runs[0].stageMs !== undefined ? {
        serializeDeflateSealMedianMs: Math.round(median(runs.map((x) => x.stageMs))),
        importMedianMs: Math.round(median(runs.map((x) => x.importMs))),
        archiveBytes: runs[0].archiveBytes,
      } : {}),
    };
  }
  document.getElementById("out").textContent = JSON.stringify(results, null, 2);
  window.__benchResults = results;
}

main().catch((e) => {
  document.getElementById("out").textContent = `error: ${e.code ?? ""} ${e.message}`;
  window.__benchResults = { error: String(e.message) };
});
