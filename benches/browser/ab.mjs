// A/B of two or more builds of the package in one page (printed, never asserted): e.g. the
// release wasm before and after a size lever (BENCHMARKS.md, "Package size"). Each build is a
// copy of pkg/ under the repo root, named in `?builds=target/ab/before,target/ab/after`. Every
// round runs every case on every build, the builds' order alternating between rounds, so a slow
// spell of the machine hits them alike; ratios are of the medians, to the first build.
// Usage: node benches/browser/run.mjs 'benches/browser/ab.html?builds=…&runs=3'
import { deleteDb, median, backupRows } from "./common.mjs";

const params = new URLSearchParams(location.search);
const RUNS = Number(params.get("runs") ?? 3);
const ROWS = Number(params.get("rows") ?? 100_000);
const builds = (params.get("builds") ?? "pkg").split(",");
// `?exportOnly`: only the exports and packBackup (what deflate changes), for more rounds.
const EXPORT_ONLY = params.has("exportOnly");
const PASS = "bench passphrase";

const apps = (encrypted) => ({ bench: { collections: { notes: { indexes: ["updatedAt"], encrypted: encrypted ? ["title", "content"] : [] } } } });

async function open(lib, encrypted) {
  const name = `ab-${Math.random()}`;
  const s = await lib.ManaStore.open({ name, userId: "bench", apps: apps(encrypted) });
  await s.unlock(new Uint8Array(32).fill(7));
  return { s, name };
}

async function time(fn) {
  const t0 = performance.now();
  const v = await fn();
  return [performance.now() - t0, v];
}

async function round(lib) {
  const out = {};
  for (const enc of EXPORT_ONLY ? [] : [true, false]) {
    const { s, name } = await open(lib, enc);
    const [put] = await time(() => s.bulkPut("notes", backupRows(10_000)));
    const [list, all] = await time(() => s.list("notes"));
    if (all.length !== 10_000) throw new Error(`list gave ${all.length}`);
    out[`bulkPut 10k${enc ? " encrypted" : ""}`] = put;
    out[`list 10k${enc ? " encrypted" : ""}`] = list;
    await s.close(); await deleteDb(name);
  }
  const src = await open(lib, true);
  for (let i = 0; i < ROWS; i += 10_000) await src.s.bulkPut("notes", backupRows(Math.min(10_000, ROWS - i), i));
  const [exp, bytes] = await time(() => src.s.exportBackup({ passphrase: PASS }));
  const [plain, plainBytes] = await time(() => src.s.exportBackup({}));
  const [pack] = await time(() => lib.packBackup({ notes: backupRows(ROWS) }, { passphrase: PASS }));
  Object.assign(out, {
    [`sealed export ${ROWS / 1000}k`]: exp,
    [`unsealed export ${ROWS / 1000}k`]: plain,
    [`packBackup ${ROWS / 1000}k sealed (serialize + deflate + seal)`]: pack,
  });
  if (EXPORT_ONLY) {
    await src.s.close(); await deleteDb(src.name);
    return out;
  }
  const dst = await open(lib, true);
  const [imp, report] = await time(() => dst.s.importBackup(bytes, { passphrase: PASS }));
  if (report.imported !== ROWS) throw new Error(`imported ${report.imported}`);
  const dst2 = await open(lib, true);
  const [impPlain] = await time(() => dst2.s.importBackup(plainBytes, {}));
  // Back into the store it came from: every row merges onto a local record (`import_row`).
  const [impFull, fullReport] = await time(() => src.s.importBackup(bytes, { passphrase: PASS }));
  if (fullReport.imported + fullReport.skipped !== ROWS) {
    throw new Error(`full-store import counted ${fullReport.imported + fullReport.skipped} rows`);
  }
  for (const x of [src, dst, dst2]) { await x.s.close(); await deleteDb(x.name); }
  Object.assign(out, {
    [`sealed import ${ROWS / 1000}k`]: imp,
    [`unsealed import ${ROWS / 1000}k`]: impPlain,
    [`sealed import ${ROWS / 1000}k into the full store`]: impFull,
  });
  return out;
}

async function main() {
  const libs = [];
  for (const b of builds) {
    const lib = await import(`../../${b}/mana_sync.js`);
    await lib.default({ module_or_path: `../../${b}/mana_sync_bg.wasm` });
    libs.push(lib);
  }
  const runs = builds.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    const order = builds.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const i of order) runs[i].push(await round(libs[i]));
  }
  const results = { builds, runs: RUNS, rows: ROWS, cases: {} };
  for (const k of Object.keys(runs[0][0])) {
    const med = runs.map((rs) => median(rs.map((x) => x[k])));
    results.cases[k] = {
      medianMs: med.map(Math.round),
      ratio: med.map((m) => +(m / med[0]).toFixed(3)),
      runsMs: runs.map((rs) => rs.map((x) => Math.round(x[k]))),
    };
  }
  document.getElementById("out").textContent = JSON.stringify(results, null, 2);
  window.__benchResults = results;
}

main().catch((e) => {
  document.getElementById("out").textContent = `error: ${e.code ?? ""} ${e.message}`;
  window.__benchResults = { error: String(e.message) };
});
