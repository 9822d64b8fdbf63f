// Sync benchmarks against a real mana-sync-server (printed, never asserted). `make bench`
// starts the server and opens this page as sync.html?server=http://127.0.0.1:PORT.
// - push: 10,000 pending changes (two encrypted fields each) pushed by syncNow, changes/s;
// - first sync: a new device pulls 20,000 records (~150 B) into IndexedDB, rows/s, against
//   raw IndexedDB puts of the very rows it stored, in the same page; and the longest
//   main-thread task meanwhile (PerformanceObserver "longtask").
import init, { ManaStore } from "../../pkg/mana_sync.js";
import { deleteDb, median, req } from "./common.mjs";

const params = new URLSearchParams(location.search);
const SERVER = params.get("server");
const RUNS = Number(params.get("runs") ?? 3);
const N = 20_000;
const KEY = new Uint8Array(32).fill(5);
// `plain=1`: the same records with no encrypted field (stored ~250 B instead of ~390 B).
const ENCRYPTED = params.get("plain") === "1" ? [] : ["title", "content"];
const APPS = { bench: { collections: { notes: { indexes: ["updatedAt"], encrypted: ENCRYPTED } } } };

// Record ids are global on the server (another user's id is not ours to write): each run
// writes its own.
function records(n, from, run) {
  return Array.from({ length: n }, (_, i) => ({
    id: `${run}-${String(from + i).padStart(6, "0")}`,
    title: `Note number ${from + i} about things`,
    content: `Some body text for note ${from + i}, lorem ipsum dolor.`,
    updatedAt: 1_700_000_000_000 + i,
    pinned: i % 7 === 0,
  }));
}

async function token(userId) {
  const r = await fetch(`${SERVER}/dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId }) });
  return (await r.json()).token;
}

async function device(user, tok) {
  const name = `sync-bench-${Math.random()}`;
  const store = await ManaStore.open({ name, userId: user, apps: APPS });
  await store.unlock(KEY);
  const sync = store.sync({ url: SERVER, token: () => tok, live: false });
  return { name, store, sync };
}

/** One user with N records on the server; the push of the first 10k is timed. */
async function seed() {
  const run = Math.random().toString(36).slice(2, 10);
  const user = `bench-${run}`;
  const tok = await token(user);
  const src = await device(user, tok);
  await src.store.bulkPut("notes", records(10_000, 0, run));
  const t0 = performance.now();
  await src.sync.syncNow();
  const pushMs = performance.now() - t0;
  await src.store.bulkPut("notes", records(N - 10_000, 10_000, run));
  await src.sync.syncNow();
  if ((await src.store.pendingCount()) !== 0) throw new Error("seed left pending changes");
  await src.store.close();
  await deleteDb(src.name);
  return { user, tok, pushMs };
}

async function firstSync(user, tok) {
  const dst = await device(user, tok);
  let longest = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longest = Math.max(longest, e.duration);
  });
  observer.observe({ type: "longtask" });
  await window.__profile?.(true); // run.mjs PROFILE=: sample this window only
  const t0 = performance.now();
  await dst.sync.syncNow();
  const ms = performance.now() - t0;
  await window.__profile?.(false);
  await new Promise((r) => setTimeout(r, 50)); // let the observer deliver
  observer.disconnect();
  const rows = await dst.store.list("notes");
  if (rows.length !== N) throw new Error(`first sync stored ${rows.length} of ${N}`);
  await dst.store.close();
  return { ms, longest, name: dst.name };
}

/** Raw IndexedDB puts of the very rows the first sync stored, one transaction. */
async function rawPuts(fromDb) {
  const src = await req(indexedDB.open(fromDb));
  const stored = await req(src.transaction("notes").objectStore("notes").getAll());
  src.close();
  const name = `sync-bench-raw-${Math.random()}`;
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
  return { ms, bytes: JSON.stringify(stored[0]).length };
}

async function main() {
  if (!SERVER) throw new Error("open as sync.html?server=http://host:port");
  await init();
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const { user, tok, pushMs } = await seed();
    const first = await firstSync(user, tok);
    const raw = await rawPuts(first.name);
    await deleteDb(first.name);
    runs.push({ pushMs, firstMs: first.ms, longest: first.longest, rawMs: raw.ms, rowBytes: raw.bytes });
  }
  const m = (k) => median(runs.map((x) => x[k]));
  const results = {
    "push 10k pending changes (syncNow)": { medianMs: Math.round(m("pushMs")), changesPerSec: Math.round(10_000 / (m("pushMs") / 1000)), runsMs: runs.map((x) => Math.round(x.pushMs)) },
    [`first sync 20k records into a new device${ENCRYPTED.length ? " (2 encrypted fields)" : " (no encrypted field)"}`]: {
      medianMs: Math.round(m("firstMs")),
      rowsPerSec: Math.round(N / (m("firstMs") / 1000)),
      runsMs: runs.map((x) => Math.round(x.firstMs)),
      longestTaskMs: runs.map((x) => Math.round(x.longest)),
      storedRowBytes: runs[0].rowBytes,
    },
    "raw IndexedDB put of the same 20k stored rows, one transaction (reference)": { medianMs: Math.round(m("rawMs")), runsMs: runs.map((x) => Math.round(x.rawMs)) },
    "first sync / raw puts": { ratios: runs.map((x) => +(x.firstMs / x.rawMs).toFixed(2)), median: +median(runs.map((x) => x.firstMs / x.rawMs)).toFixed(2) },
  };
  document.getElementById("out").textContent = JSON.stringify(results, null, 2);
  window.__benchResults = results;
}

main().catch((e) => {
  document.getElementById("out").textContent = `error: ${e.code ?? ""} ${e.message}`;
  window.__benchResults = { error: `${e.code ?? ""} ${e.message}` };
});
