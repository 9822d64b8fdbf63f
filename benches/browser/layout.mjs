// Raw IndexedDB cost of the stored shapes the store could use (printed, never asserted):
// what the record's __fieldMeta and the pending queue cost before any wasm runs.
import { median } from "./common.mjs";

const RUNS = Number(new URLSearchParams(location.search).get("runs") ?? 5);
const N = 10_000;
const HLC = "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60";
const FIELDS = ["id", "title", "content", "updatedAt", "pinned", "spaceId"];

function records(n) {
  return Array.from({ length: n }, (_, i) => ({
    id: `rec-${String(i).padStart(6, "0")}`,
    title: `Note number ${i} about things`,
    content: `Some body text for note ${i}, lorem ipsum dolor.`,
    updatedAt: 1_700_000_000_000 + i,
    pinned: i % 7 === 0,
    spaceId: "_personal:bench",
  }));
}
const metaObj = () => Object.fromEntries(FIELDS.map((f) => [f, { at: HLC, actor: { kind: "user", id: "bench" } }]));
const metaStr = () => JSON.stringify(metaObj());
const metaShort = () => JSON.stringify({ "*": { at: HLC } });

async function open(name) {
  return new Promise((res, rej) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => {
      r.result.createObjectStore("notes", { keyPath: "id" }).createIndex("updatedAt", "updatedAt");
      r.result.createObjectStore("pending", { autoIncrement: true });
    };
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error);
  });
}

async function run(shape, durability) {
  const name = `layout-${Math.random()}`;
  const db = await open(name);
  const data = records(N);
  const t0 = performance.now();
  let rows = data;
  if (shape.meta === "obj") rows = data.map((r) => ({ ...r, __fieldMeta: metaObj() }));
  if (shape.meta === "short") rows = data.map((r) => ({ ...r, __fieldMeta: metaShort() }));
  if (shape.meta === "str") rows = data.map((r) => ({ ...r, __fieldMeta: metaStr() }));
  const changes = shape.pending ? rows.map((r) => ({ eventId: crypto.randomUUID(), op: "insert", table: "notes", id: r.id, data: r, at: HLC })) : [];
  const pendingRows = [];
  const per = shape.rowChanges ?? 2000;
  for (let i = 0; i < changes.length; i += per) {
    const chunk = changes.slice(i, i + per);
    pendingRows.push({ count: chunk.length, changes: shape.pending === "str" ? JSON.stringify(chunk) : chunk });
  }
  const tPrep = performance.now();
  let tIssued;
  await new Promise((res, rej) => {
    const tx = db.transaction(["notes", "pending"], "readwrite", durability ? { durability } : undefined);
    const s = tx.objectStore("notes");
    for (const r of rows) s.put(r);
    const p = tx.objectStore("pending");
    for (const r of pendingRows) p.add(r);
    tIssued = performance.now();
    tx.oncomplete = res;
    tx.onerror = () => rej(tx.error);
  });
  const t1 = performance.now();
  const tx = db.transaction("notes");
  const all = await new Promise((res) => { const q = tx.objectStore("notes").getAll(); q.onsuccess = () => res(q.result); });
  const t2 = performance.now();
  if (all.length !== N) throw new Error("count");
  db.close();
  indexedDB.deleteDatabase(name);
  return { prep: tPrep - t0, write: t1 - tPrep, issue: tIssued - tPrep, getAll: t2 - t1 };
}

async function main() {
  const shapes = {
    "plain records": {},
    "+ __fieldMeta objects": { meta: "obj" },
    "+ __fieldMeta string": { meta: "str" },
    "+ __fieldMeta short string": { meta: "short" },
    "+ meta objects + pending objects": { meta: "obj", pending: "obj" },
    "+ meta string + pending objects": { meta: "str", pending: "obj" },
    "+ meta string + pending JSON string": { meta: "str", pending: "str" },
    "+ short meta + pending JSON string, 2000 per row": { meta: "short", pending: "str" },
    "+ short meta + pending JSON string, 500 per row": { meta: "short", pending: "str", rowChanges: 500 },
    "+ short meta + pending JSON string, 150 per row": { meta: "short", pending: "str", rowChanges: 150 },
    "+ meta string + pending JSON string, relaxed": { meta: "str", pending: "str", durability: "relaxed" },
    "+ meta string + pending JSON string, strict": { meta: "str", pending: "str", durability: "strict" },
  };
  const out = {};
  for (let r = 0; r < RUNS; r++) {
    for (const [label, shape] of Object.entries(shapes)) {
      const x = await run(shape, shape.durability);
      (out[label] ??= { prep: [], write: [], issue: [], getAll: [] });
      for (const k of ["prep", "write", "issue", "getAll"]) out[label][k].push(x[k]);
    }
  }
  const res = {};
  for (const [k, v] of Object.entries(out)) res[k] = `write ${Math.round(median(v.write))} ms (issuing ${Math.round(median(v.issue))}), getAll ${Math.round(median(v.getAll))} ms (js prep ${Math.round(median(v.prep))} ms)`;
  document.getElementById("out").textContent = JSON.stringify(res, null, 2);
  window.__benchResults = res;
}
main().catch((e) => { window.__benchResults = { error: String(e.message) }; });
