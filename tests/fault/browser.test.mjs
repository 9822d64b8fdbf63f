// Browser fault cases (issue #13's fault harness): Playwright drives Debian's Chromium against a
// real `mana-sync-server --dev` on SQLite.
//   - a page reloaded while a push is in flight (the server committed it, the answer never
//     arrived): nothing pending is lost, nothing is applied twice (the server's change log is
//     read straight from its database: one change per record, the client's own eventIds and
//     HLCs);
//   - a page reloaded in the middle of a paginated first sync: the next pull starts at the
//     cursor of the last page written, not from zero, and no record is fetched twice;
//   - the origin's storage quota cut to a few MB through CDP: a write over it fails with
//     `quota_exceeded` and writes nothing; once there is room again, writes work.
//
//   node --test tests/fault/      (scripts/ci/test-fault-browser.sh builds what it needs; firefox.test.mjs is the quota case in Firefox)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { serveFiles } from "./files.mjs";
import { overQuota } from "./quota.mjs";

const root = resolve(new URL("../..", import.meta.url).pathname);
const require = createRequire(join(root, "tools/package.json"));
const { chromium } = require("playwright-core");
const bin = process.env.MANA_SYNC_SERVER ?? join(root, "target/debug/mana-sync-server");
const APP = "fault";
const MB = 1024 * 1024;

let browser, files, server, serverUrl, dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mana-sync-fault-"));
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
  files = await serveFiles(root);
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

const clientUrl = (user, db, extra = "") =>
  `${files.origin}/tests/fault/client.html?server=${encodeURIComponent(serverUrl)}&user=${user}&db=${db}${extra}`;

async function ready(page) {
  await page.waitForFunction(() => window.clientReady || window.clientError, null, { timeout: 30_000 });
  const error = await page.evaluate(() => window.clientError);
  assert.equal(error, undefined, `client failed to open: ${error}`);
}

async function openClient(context, user, db, extra = "") {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(clientUrl(user, db, extra));
  await ready(page);
  return { page, errors };
}

/** The server's change log, straight from its SQLite file (read-only). */
function serverChanges(user) {
  const script = `import json, sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = c.execute("SELECT seq, event_id, record_id, op, updated_at FROM changes WHERE app_id = ? AND author = ? ORDER BY seq", (sys.argv[2], sys.argv[3])).fetchall()
print(json.dumps(rows))`;
  const out = execFileSync("python3", ["-c", script, join(dir, "sync.db"), APP, user], { encoding: "utf8" });
  return JSON.parse(out).map(([seq, eventId, id, op, updatedAt]) => ({ seq, eventId, id, op, updatedAt }));
}

async function until(what, f, timeout) {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > timeout) assert.fail(`timed out after ${timeout} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const pushUrl = (u) => new URL(u).pathname === `/sync/${APP}`;
const pullUrl = (u) => new URL(u).pathname === `/sync/${APP}/pull`;

test("a reload while a push is in flight loses no pending change and applies none twice", async () => {
  const context = await browser.newContext();
  const user = "u-push", db = "push";
  const N = 1800; // four push batches of at most 500
  const pushes = []; // eventIds of every push that reached the server, in order
  let held = null; // resolves once the held push has been committed by the server
  let holdNext = 2; // hold the answer to this push (1-based)
  await context.route((u) => pushUrl(u), async (route) => {
    if (route.request().method() !== "POST") return route.continue();
    const body = JSON.parse(route.request().postData());
    pushes.push(body.changes.map((c) => c.eventId));
    const response = await route.fetch(); // the server commits the batch
    if (pushes.length === holdNext) {
      held.resolve(response.status());
      return; // never answered: the page is reloaded before it learns of the commit
    }
    await route.fulfill({ response });
  });
  let committed;
  held = { promise: new Promise((r) => (committed = r)) };
  held.resolve = committed;

  const { page, errors } = await openClient(context, user, db, "&start=0");
  assert.equal(await page.evaluate(({ N }) => window.client.bulkPut("n", N), { N }), null);
  const queued = await page.evaluate(() => window.client.rawPending());
  assert.equal(queued.length, N);
  const queuedAt = new Map(queued.map((c) => [c.id, c]));

  await page.evaluate(() => window.client.start());
  assert.equal(await held.promise, 200, "the held push was committed by the server");
  // A write while the push is in flight: pending, in a row of its own.
  assert.equal(await page.evaluate(() => window.client.put("during", "written while a push was in flight")), null);
  const during = (await page.evaluate(() => window.client.rawPending())).find((c) => c.id === "during");
  assert.ok(during, "the write during the push is pending");
  const beforeReload = serverChanges(user);
  const heldIds = new Set(pushes[holdNext - 1]);
  assert.ok([...heldIds].every((e) => beforeReload.some((c) => c.eventId === e)), "the held batch is on the server");

  holdNext = -1;
  const pushesBefore = pushes.length;
  await page.reload();
  await ready(page);
  await page.evaluate(() => window.client.start()); // the app starts sync on load, as before
  await until("nothing pending after the reload", async () => (await page.evaluate(() => window.client.pending())) === 0, 20_000);
  await until("synced", async () => (await page.evaluate(() => window.client.status())) === "synced", 10_000);

  // The unanswered batch went out again after the reload, with the same eventIds.
  const resent = pushes.slice(pushesBefore).flat();
  const resentHeld = resent.filter((e) => heldIds.has(e)).length;
  assert.equal(resentHeld, heldIds.size, "the unacknowledged batch is pushed again after the reload");

  const log = serverChanges(user);
  const byId = new Map();
  for (const c of log) {
    assert.ok(!byId.has(c.id), `record ${c.id} applied twice on the server (seq ${byId.get(c.id)?.seq} and ${c.seq})`);
    byId.set(c.id, c);
  }
  assert.equal(log.length, N + 1, "one server change per local write");
  for (const [id, c] of queuedAt) {
    const s = byId.get(id);
    assert.ok(s, `pending change of ${id} lost`);
    assert.equal(s.eventId, c.eventId, `${id}: the server holds the client's own eventId`);
    assert.equal(s.updatedAt, c.updatedAt, `${id}: the server holds the client's own HLC`);
  }
  assert.equal(byId.get("during")?.eventId, during.eventId, "the write made during the push reached the server");

  // The client: every record once, its HLCs untouched by the round trip, nothing pending.
  const meta = await page.evaluate(() => window.client.rawTitleAt());
  assert.equal(Object.keys(meta).length, N + 1);
  for (const [id, c] of queuedAt) {
    assert.equal(meta[id], c.updatedAt, `${id}: the client's HLC is unchanged`);
  }
  assert.deepEqual(errors, []);
  console.log(`push reload: ${N + 1} changes, ${pushesBefore} pushes before the reload (batch ${pushesBefore} held after its commit), ` +
    `${pushes.length - pushesBefore} after (${resentHeld} changes sent again); server log ${log.length} changes, 0 duplicates`);
  await context.close();
});

test("a reload in the middle of a paginated first sync resumes from the last page written", async () => {
  const user = "u-first", N = 6000, LIMIT = 200;
  // Another device writes N records and pushes them.
  const seeder = await browser.newContext();
  const { page: writer } = await openClient(seeder, user, "seed", "&start=0");
  assert.equal(await writer.evaluate(({ N }) => window.client.bulkPut("r", N), { N }), null);
  assert.equal(await writer.evaluate(() => window.client.syncNow()), null);
  await seeder.close();
  assert.equal(serverChanges(user).length, N);

  // A new device: its pulls are cut to small pages and each answer delayed a little, so that the
  // reload falls between pages; `hold` keeps further answers back while the reload happens.
  const context = await browser.newContext();
  const pulls = []; // {since, got, epoch}
  let epoch = 0, hold = false;
  await context.route((u) => pullUrl(u), async (route) => {
    const url = new URL(route.request().url());
    if (url.searchParams.get("collection") !== "notes") return route.continue();
    url.searchParams.set("limit", String(LIMIT));
    const mine = epoch;
    const response = await route.fetch({ url: url.toString() });
    const body = await response.json();
    await new Promise((r) => setTimeout(r, 30));
    if (hold || mine !== epoch) return; // the page goes away before this answer arrives
    pulls.push({ since: url.searchParams.get("since") ?? "", got: body.serverChanges.length, epoch: mine });
    await route.fulfill({ response, json: body });
  });
  const { page, errors } = await openClient(context, user, "first");
  await until("three pages written", async () => (await page.evaluate(() => window.client.rawCount())) >= 3 * LIMIT, 20_000);
  hold = true;
  assert.equal(await page.evaluate(() => window.client.status()), "syncing");
  // Let a page already answered finish writing (records and cursor unchanged for 300 ms), then
  // take what is committed.
  const committed = async () => {
    const count = await page.evaluate(() => window.client.rawCount());
    const cursor = (await page.evaluate(() => window.client.rawCursors())).find((c) => c.collection === "notes")?.cursor;
    return { count, cursor };
  };
  let seen = await committed();
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await committed();
    if (now.count === seen.count && now.cursor === seen.cursor) break;
    seen = now;
  }
  const { count: written, cursor } = seen;
  assert.ok(cursor, "a cursor was committed with the pages");
  assert.ok(written < N, "the reload happens before the first sync ends");
  const pagesBefore = pulls.length;

  epoch++;
  hold = false;
  await page.reload();
  await ready(page);
  await until("the first sync finished", async () => (await page.evaluate(() => window.client.status())) === "synced", 30_000);

  const after = pulls.filter((p) => p.epoch === epoch);
  assert.ok(after.length > 0);
  assert.equal(after[0].since, cursor, "the first pull after the reload starts at the committed cursor");
  const fetchedAfter = after.reduce((n, p) => n + p.got, 0);
  assert.equal(fetchedAfter, N - written, "after the reload, only the records not yet written are fetched");
  assert.equal(await page.evaluate(() => window.client.rawCount()), N, "every record once");
  assert.equal(await page.evaluate(() => window.client.pending()), 0, "a pull queues nothing");
  const ids = new Set(await page.evaluate(() => window.client.list()));
  for (let i = 0; i < N; i++) assert.ok(ids.has(`r-${i}`), `r-${i} missing`);
  assert.deepEqual(errors, []);
  console.log(`first-sync reload: ${N} records in pages of ${LIMIT}; reloaded after ${pagesBefore} pages answered, ` +
    `${written} records written; ${after.length} pulls after the reload fetched ${fetchedAfter} records, ` +
    `starting at the committed cursor`);
  await context.close();
});

test("a write over the storage quota fails with quota_exceeded, writes nothing, and works once there is room", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const cdp = await context.newCDPSession(page);
  const quota = (mb) => cdp.send("Storage.overrideQuotaForOrigin", { origin: files.origin, quotaSize: mb * MB });
  // Chromium takes an origin's quota when its IndexedDB is first opened: override it before.
  await quota(8);
  await page.goto(`${files.origin}/tests/fault/client.html?user=u-quota&db=quota`);
  await ready(page);
  const run = async (fn, arg) => (await page.evaluate(fn, arg)) ?? null;
  const { err, usageMB } = await overQuota(run, 8);

  // Full again; then a raised quota makes room too.
  const again = await run((size) => window.client.bulkPut("more", 12, size), MB / 2);
  assert.equal(again?.code, "quota_exceeded");
  await quota(64);
  assert.equal(await run((size) => window.client.bulkPut("more", 12, size), MB / 2), null);
  assert.equal(await run(() => window.client.rawCount()), 5 + 1 + 4 + 12);
  assert.deepEqual(errors, []);
  console.log(`quota (Chromium, CDP override 8 MB): 2 MB bulkPut with 5 MB taken → ${err.code} ("${err.message}"), ` +
    `nothing written; fits after 5 MB freed (usage ${usageMB.toFixed(1)} MB); 6 MB more fails, fits once the quota is 64 MB`);
  await context.close();
});
