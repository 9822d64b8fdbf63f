// Backups and bulkPut at IndexedDB's own speed, and the page kept responsive (printed, never
// asserted). In one page, per round, on the same 100,000 records:
// - a sealed export ÷ (raw `getAll` of the stored records + WebCrypto PBKDF2 of 600,000 iterations);
// - an import ÷ raw `put` of the same stored records in one transaction;
// - the longest main-thread task (PerformanceObserver "longtask", i.e. > 50 ms) during the
//   export, the import and a 10k `bulkPut`, and the longest gap between progress callbacks;
// - the same import into the store that holds its records (every row merges onto one).
import init, { ManaStore } from "../../pkg/mana_sync.js";
import { req, deleteDb, median, backupRows } from "./common.mjs";

const params = new URLSearchParams(location.search);
const RUNS = Number(params.get("runs") ?? 3);
const N = Number(params.get("rows") ?? 100_000);
const PASS = "bench passphrase";
const APPS = { bench: { collections: { notes: { indexes: ["updatedAt"], encrypted: ["title", "content"] } } } };

/** Runs `fn` while watching long tasks; returns its time, the longest task and its result. */
const DEBUG = params.has("debug");
// With run.mjs PROFILE=, `profile=export|import|reimport` samples that case of the first round.
const PROFILE = params.get("profile");
const trace = [];
async function watched(fn, label = "") {
  let longest = 0;
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) {
      longest = Math.max(longest, e.duration);
      if (DEBUG && e.duration > 100) trace.push({ label, longtask: Math.round(e.startTime), ms: Math.round(e.duration) });
    }
  });
  obs.observe({ type: "longtask" });
  const profiled = PROFILE === label && window.__profile;
  if (profiled) await window.__profile(true);
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  if (profiled) await window.__profile(false);
  await new Promise((r) => setTimeout(r, 50)); // let the observer deliver
  obs.disconnect();
  return { ms, longest, value };
}

/** An onProgress that remembers the longest gap between calls (from the start to the end). */
function progressGaps() {
  const g = { last: performance.now(), max: 0, calls: 0 };
  g.fn = (phase, done) => { if (DEBUG) trace.push({ t: Math.round(performance.now()), phase, done }); const now = performance.now(); g.max = Math.max(g.max, now - g.last); g.last = now; g.calls++; };
  g.end = () => { g.max = Math.max(g.max, performance.now() - g.last); return g.max; };
  return g;
}

async function openStore(name) {
  const s = await ManaStore.open({ name, userId: "bench", apps: APPS });
  await s.unlock(new Uint8Array(32).fill(7));
  return s;
}

async function rawGetAllAndPbkdf2(dbName) {
  const t0 = performance.now();
  const db = await req(indexedDB.open(dbName));
  const stored = await req(db.transaction("notes").objectStore("notes").getAll());
  db.close();
  const base = await crypto.subtle.importKey("raw", new TextEncoder().encode(PASS), "PBKDF2", false, ["deriveBits"]);
  await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: crypto.getRandomValues(new Uint8Array(16)), iterations: 600_000 }, base, 256);
  return { ms: performance.now() - t0, stored };
}

async function rawPut(stored) {
  const name = `backup-bench-raw-${Math.random()}`;
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => open.result.createObjectStore("notes", { keyPath: "id" }).createIndex("updatedAt", "updatedAt");
  const db = await req(open);
  const t0 = performance.now();
  const tx = db.transaction("notes", "readwrite");
  const os = tx.objectStore("notes");
  for (const r of stored) os.put(r);
  await new Promise((res, rej) => { tx.oncomplete = res; tx.onabort = () => rej(tx.error); });
  const ms = performance.now() - t0;
  db.close();
  await deleteDb(name);
  return ms;
}

let wasmMemory = () => 0;

async function round(r) {
  const srcName = `backup-bench-src-${r}-${Math.random()}`;
  const dstName = `backup-bench-dst-${r}-${Math.random()}`;
  const src = await openStore(srcName);
  const bulk = await watched(() => src.bulkPut("notes", backupRows(10_000)), "bulkPut");
  for (let i = 10_000; i < N; i += 10_000) await src.bulkPut("notes", backupRows(Math.min(10_000, N - i), i));

  const exportGaps = progressGaps();
  const exp = await watched(() => src.exportBackup({ passphrase: PASS, onProgress: exportGaps.fn }), "export");
  const exportGap = exportGaps.end();
  const rawRead = await rawGetAllAndPbkdf2(srcName);
  const rawPutMs = await rawPut(rawRead.stored);
  // The reference's 100,000 records are not kept alive through the cases after it: every
  // major GC during the import would have to mark them (100+ ms pauses counted as its tasks).
  rawRead.stored = null;

  const dst = await openStore(dstName);
  const importGaps = progressGaps();
  const imp = await watched(() => dst.importBackup(exp.value, { passphrase: PASS, onProgress: importGaps.fn }), "import");
  const importGap = importGaps.end();
  const memoryMB = Math.round(wasmMemory() / 1048576); // wasm memory never shrinks: the peak so far
  if (imp.value.imported !== N) throw new Error(`imported ${imp.value.imported} of ${N}`);
  // The same archive into the store that holds every record of it (each row merges onto one).
  const reimportGaps = progressGaps();
  const reimp = await watched(() => src.importBackup(exp.value, { passphrase: PASS, onProgress: reimportGaps.fn }), "reimport");
  const reimportGap = reimportGaps.end();
  await src.close(); await dst.close();
  await deleteDb(srcName); await deleteDb(dstName);
  return {
    bulkMs: bulk.ms, bulkLongest: bulk.longest,
    exportMs: exp.ms, exportLongest: exp.longest, exportGap, exportCalls: exportGaps.calls,
    rawReadMs: rawRead.ms,
    importMs: imp.ms, importLongest: imp.longest, importGap, importCalls: importGaps.calls,
    reimportMs: reimp.ms, reimportLongest: reimp.longest, reimportGap,
    rawPutMs, archiveBytes: exp.value.length, memoryMB,
  };
}

async function main() {
  const wasm = await init();
  wasmMemory = () => wasm.memory.buffer.byteLength;
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await round(r));
  const m = (k) => Math.round(median(runs.map((x) => x[k])));
  const each = (k, d = 0) => runs.map((x) => +x[k].toFixed(d));
  const results = {
    rows: N, archiveBytes: runs[0].archiveBytes,
    "sealed export (ms)": { median: m("exportMs"), runs: each("exportMs") },
    "raw getAll + WebCrypto PBKDF2 600k (ms)": { median: m("rawReadMs"), runs: each("rawReadMs") },
    "export ÷ raw, per run": runs.map((x) => +(x.exportMs / x.rawReadMs).toFixed(2)),
    "import (ms)": { median: m("importMs"), runs: each("importMs") },
    "raw put of the stored records, one transaction (ms)": { median: m("rawPutMs"), runs: each("rawPutMs") },
    "import ÷ raw, per run": runs.map((x) => +(x.importMs / x.rawPutMs).toFixed(2)),
    "import into the store holding its records (ms)": { median: m("reimportMs"), runs: each("reimportMs") },
    "wasm memory after each round's import, MB (the peak so far: it never shrinks)": each("memoryMB"),
    "longest task (ms)": { export: each("exportLongest"), import: each("importLongest"), importIntoFull: each("reimportLongest"), bulkPut10k: each("bulkLongest") },
    "longest gap between progress calls (ms)": { export: each("exportGap"), import: each("importGap"), importIntoFull: each("reimportGap") },
    "progress calls": { export: each("exportCalls"), import: each("importCalls") },
    "bulkPut 10k (ms)": { median: m("bulkMs"), runs: each("bulkMs") },
  };
  if (DEBUG) {
    // Each long task with the progress reports around it.
    const progress = trace.filter((e) => e.phase !== undefined);
    results.longTasks = trace.filter((e) => e.longtask !== undefined).map((l) => ({
      ...l,
      before: progress.filter((p) => p.t <= l.longtask).at(-1),
      after: progress.find((p) => p.t >= l.longtask + l.ms),
    }));
    // The five longest gaps between progress reports, with the reports on either side.
    results.longestGaps = progress.slice(1).map((p, i) => ({ ms: p.t - progress[i].t, from: progress[i], to: p }))
      .sort((a, b) => b.ms - a.ms).slice(0, 5);
    // Each run of reports of one phase: when it started and how long it lasted.
    results.phases = [];
    for (const p of progress) {
      const last = results.phases.at(-1);
      if (last?.phase === p.phase) last.ms = p.t - last.t;
      else results.phases.push({ phase: p.phase, t: p.t, ms: 0 });
    }
  }
  document.getElementById("out").textContent = JSON.stringify(results, null, 2);
  window.__benchResults = results;
}

main().catch((e) => {
  document.getElementById("out").textContent = `error: ${e.code ?? ""} ${e.message}`;
  window.__benchResults = { error: String(e.message) };
});
