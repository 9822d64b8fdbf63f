// Serves the repo root on a loopback port, opens a bench page in headless Chromium and
// prints what it reports. Usage: node benches/browser/run.mjs [page relative to repo root]
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
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
  await tab.goto(url);
  await tab.waitForFunction(() => window.__benchResults !== undefined, null, { timeout: Number(process.env.BENCH_TIMEOUT_MS ?? 600_000) });
  const results = await tab.evaluate(() => window.__benchResults);
  console.log(JSON.stringify(results, null, 2));
  if (results.error) process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
