// Serves the repo root on a loopback port, opens a bench page in headless Chromium and
// prints what it reports. Usage: node benches/browser/run.mjs [page relative to repo root]
// With PROFILE=<file>, the page's main thread is sampled by the CPU profiler (CDP) and the
// functions with the most self time are printed; the profile (DevTools' .cpuprofile) goes to
// <file>. Wasm functions are named when the package keeps its name section (no wasm-opt). A
// page may narrow the sampled window with `await window.__profile?.(true)` … `(false)`.
import { createServer } from "node:http";
import { readFile, writeFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { createRequire } from "node:module";

const root = resolve(new URL("../..", import.meta.url).pathname);
const require = createRequire(join(root, "tools/package.json"));
const { chromium } = require("playwright-core");
const page = process.argv[2] ?? "benches/browser/bench.html";
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

const server = createServer(async (req, res) => {
  const path = normalize(join(root, decodeURIComponent(new URL(req.url, "http://x").pathname)));
  if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
  try {
    const body = await readFile(path);
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch { res.writeHead(404).end(); }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/${page}`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const tab = await browser.newPage();
  tab.on("console", (m) => console.log(`[page] ${m.text()}`));
  const cdp = process.env.PROFILE ? await tab.context().newCDPSession(tab) : null;
  let profiling = false;
  const stopProfile = async () => {
    if (!profiling) return;
    profiling = false;
    const { profile: taken } = await cdp.send("Profiler.stop");
    await writeFile(process.env.PROFILE, JSON.stringify(taken));
    printSelfTimes(taken);
  };
  const startProfile = async () => {
    if (profiling) await cdp.send("Profiler.stop");
    await cdp.send("Profiler.start");
    profiling = true;
  };
  if (cdp) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
    await tab.exposeFunction("__profile", (on) => (on ? startProfile() : stopProfile()));
    await startProfile();
  }
  await tab.goto(url);
  await tab.waitForFunction(() => window.__benchResults !== undefined, null, { timeout: Number(process.env.BENCH_TIMEOUT_MS ?? 600_000) });
  const results = await tab.evaluate(() => window.__benchResults);
  if (cdp) await stopProfile();
  console.log(JSON.stringify(results, null, 2));
  if (results.error) process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}

/** The 40 functions with the most self time in a CDP profile, in ms and share of the busy time. */
function printSelfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => {
    const f = byId.get(id).callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}`;
    self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  const idle = ["(idle) ", "(program) ", "(garbage collector) "];
  const busy = [...self].filter(([n]) => !idle.includes(n)).reduce((a, [, ms]) => a + ms, 0);
  console.log(`profile: busy ${Math.round(busy)} ms; ${idle.map((n) => `${n.trim()} ${Math.round(self.get(n) ?? 0)} ms`).join(", ")}`);
  for (const [name, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    console.log(`${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${name}`);
  }
}
