// Many tabs, one sync (docs/sync.md "Many tabs"): Playwright drives Debian's Chromium against a
// real `mana-sync-server --dev`. Several tabs of one browser context are one device: one of
// them leads (Web Locks) and holds the only WebSocket; the others reach the server through it.
//
//   node --test tests/tabs/tabs.test.mjs      (scripts/ci/test-tabs.sh builds what it needs)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { createInterface } from "node:readline";

const root = resolve(new URL("../..", import.meta.url).pathname);
const require = createRequire(join(root, "tools/package.json"));
const { chromium } = require("playwright-core");
const bin = process.env.MANA_SYNC_SERVER ?? join(root, "target/debug/mana-sync-server");
const types = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm" };

let browser, files, server, serverUrl, dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mana-sync-tabs-"));
  server = spawn(bin, ["--dev", "--port", "0", "--database-url", `sqlite://${join(dir, "sync.db")}`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  serverUrl = await new Promise((ok, fail) => {
    server.on("error", fail);
    server.on("exit", (code) => fail(new Error(`server exited with ${code}`)));
    createInterface({ input: server.stdout }).on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) ok(m[1]);
    });
  });
  files = createServer(async (req, res) => {
    const path = normalize(join(root, decodeURIComponent(new URL(req.url, "http://x").pathname)));
    if (!path.startsWith(root)) return res.writeHead(403).end();
    try {
      const body = await readFile(path);
      res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => files.listen(0, "127.0.0.1", ok));
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
});

after(async () => {
  await browser?.close();
  files?.close();
  server?.removeAllListeners("exit");
  server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One device: a browser context whose pages' WebSockets are counted. */
async function device() {
  const context = await browser.newContext();
  const sockets = { opened: 0, open: 0, errors: [] };
  const watch = (page) => {
    let mine = 0; // a closed page's sockets report no close event
    page.on("websocket", (ws) => {
      sockets.opened++;
      sockets.open++;
      mine++;
      ws.on("close", () => {
        sockets.open--;
        mine--;
      });
    });
    page.on("close", () => {
      sockets.open -= mine;
      mine = 0;
    });
    page.on("pageerror", (e) => sockets.errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && sockets.errors.push(m.text()));
  };
  context.on("page", watch);
  return { context, sockets };
}

async function openTab(context, user, db, extra = "") {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${files.address().port}/tests/tabs/tab.html?server=${encodeURIComponent(serverUrl)}&user=${user}&db=${db}${extra}`);
  await page.waitForFunction(() => window.tabReady || window.tabError, null, { timeout: 30_000 });
  const error = await page.evaluate(() => window.tabError);
  assert.equal(error, undefined, `tab failed to open: ${error}`);
  return page;
}

const state = (page) => page.evaluate(() => window.tab.state());

async function leaderOf(pages, timeout = 10_000) {
  const t0 = Date.now();
  for (;;) {
    const states = await Promise.all(pages.map(state));
    const leaders = pages.filter((_, i) => states[i].leader);
    if (leaders.length === 1) return leaders[0];
    assert.ok(leaders.length <= 1, "two tabs lead at once");
    if (Date.now() - t0 > timeout) assert.fail("no leader");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitStatus(page, status, timeout = 10_000) {
  await page.waitForFunction((s) => window.tab.state().status === s, status, { timeout, polling: 25 });
}

/** Every record of `user` on the server: id → its change. */
async function serverRecords(user) {
  const { token } = await (await fetch(`${serverUrl}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: user }),
  })).json();
  const records = new Map();
  let since = "";
  for (;;) {
    const r = await fetch(`${serverUrl}/sync/tabs/pull?collection=notes&limit=1000${since}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(r.status, 200);
    const page = await r.json();
    for (const c of page.serverChanges) records.set(c.id, c);
    if (!page.hasMore) return records;
    since = `&since=${page.syncedUntil}`;
  }
}

async function until(what, f, timeout) {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > timeout) assert.fail(`timed out after ${timeout} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - t0;
}

test("three tabs share one WebSocket; a follower's write and syncNow go through the leader", async () => {
  const { context, sockets } = await device();
  const user = "u-three", db = "three";
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await openTab(context, user, db));
  const leader = await leaderOf(pages);
  for (const p of pages) await waitStatus(p, "synced");
  // Give a second socket every chance to show up before counting.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sockets.opened, 1, "one WebSocket opened in total");
  assert.equal(sockets.open, 1);

  const follower = pages.find((p) => p !== leader);
  const t0 = Date.now();
  await follower.evaluate(() => window.tab.put("f-1", "from a follower"));
  const took = await until("the follower's write on the server", async () => (await serverRecords(user)).has("f-1"), 2_000);
  console.log(`follower write → server: ${Date.now() - t0} ms (polled ${took} ms)`);
  await waitStatus(follower, "synced", 2_000);

  // syncNow in a follower resolves only after the leader pushed it.
  await follower.evaluate(async () => {
    await window.tab.put("f-2", "pushed by syncNow");
    await window.tab.syncNow();
  });
  assert.ok((await serverRecords(user)).has("f-2"), "pushed when syncNow resolved");
  assert.equal(await follower.evaluate(() => window.tab.pending()), 0);
  assert.deepEqual(sockets.errors, []);
  await context.close();
});

test("closing the leader's tab hands sync to another tab within 5 s", async () => {
  const { context, sockets } = await device();
  const user = "u-handover", db = "handover";
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await openTab(context, user, db));
  const leader = await leaderOf(pages);
  for (const p of pages) await waitStatus(p, "synced");
  const rest = pages.filter((p) => p !== leader);

  const t0 = Date.now();
  await leader.close();
  await rest[0].evaluate(() => window.tab.put("after-close", "written right after the leader closed"));
  await until("the write acknowledged by the next leader", async () => (await serverRecords(user)).has("after-close"), 5_000);
  const handover = Date.now() - t0;
  await until("one WebSocket again", async () => sockets.open === 1, 5_000);
  const next = await leaderOf(rest, 5_000);
  console.log(`hand-over: leader closed → next push acknowledged in ${handover} ms; now leading: tab ${pages.indexOf(next)}`);
  assert.equal(sockets.open, 1);

  for (const [i, p] of rest.entries()) await p.evaluate((i) => window.tab.put(`still-${i}`, "after the hand-over"), i);
  await until("writes of every remaining tab on the server", async () => {
    const r = await serverRecords(user);
    return r.has("still-0") && r.has("still-1");
  }, 5_000);
  for (const p of rest) await waitStatus(p, "synced", 5_000);
  assert.deepEqual(sockets.errors, []);
  await context.close();
});

test("two tabs writing 300 records each at once stamp 600 distinct HLCs", async () => {
  const { context } = await device();
  const user = "u-hlc", db = "hlc";
  const a = await openTab(context, user, db);
  const b = await openTab(context, user, db);
  await Promise.all([a.evaluate(() => window.tab.bulkPut("a", 300)), b.evaluate(() => window.tab.bulkPut("b", 300))]);
  await a.evaluate(() => window.tab.syncNow());
  await b.evaluate(() => window.tab.syncNow());
  const records = await serverRecords(user);
  assert.equal(records.size, 600);
  const hlc = (c) => c.updatedAt ?? Object.values(c.fields)[0].hlc;
  const hlcs = new Set([...records.values()].map(hlc));
  assert.equal(hlcs.size, 600, "no two writes share a timestamp");
  // Distinct by construction, not by luck of the wall clock: each tab stamps with its own node
  // (`<millis>-<counter>-<node>`), which differs from the other tab's only in its tab bits.
  const nodes = (prefix) => new Set([...records.values()].filter((c) => c.id.startsWith(prefix)).map((c) => hlc(c).slice(-16)));
  const [na, nb] = [nodes("a-"), nodes("b-")];
  assert.equal(na.size, 1);
  assert.equal(nb.size, 1);
  const [x, y] = [[...na][0], [...nb][0]];
  assert.notEqual(x, y, "the two tabs stamp with different HLC nodes");
  assert.equal(x.slice(0, 10), y.slice(0, 10), "one device: only the low 24 bits (the tab) differ");
  await context.close();
});

test("a tab opened while the leader is mid first sync ends with the final state", async () => {
  const user = "u-late", N = 6_000;
  // Another device of the user fills the server.
  const other = await device();
  const seeder = await openTab(other.context, user, "seed");
  await seeder.evaluate((n) => window.tab.bulkPut("seed", n), N);
  await seeder.evaluate(() => window.tab.syncNow());
  await other.context.close();

  const { context, sockets } = await device();
  const leader = await openTab(context, user, "late");
  await waitStatus(leader, "syncing");
  const follower = await openTab(context, user, "late");
  const during = await state(leader);
  const shown = await follower.evaluate(() => window.tab.count());
  console.log(`when the follower opened: leader ${during.status}, ${shown} of ${N} records shown`);
  assert.equal(during.status, "syncing", "the first sync was still running");
  await waitStatus(follower, "synced", 60_000);
  await follower.waitForFunction((n) => window.tab.count() === n, N, { timeout: 10_000 });
  assert.equal(await state(follower).then((s) => s.leader), false);
  assert.equal(sockets.opened, 1);
  assert.deepEqual(sockets.errors, []);
  await context.close();
});
