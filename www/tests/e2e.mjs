// End-to-end test of the demo app: builds it with Vite, serves www/dist from a tiny static
// server on 127.0.0.1 (random port), and drives Debian's Chromium through playwright-core.
//
//   node --test tests/e2e.mjs          (scripts/ci/test-demo.sh builds pkg/ first)
//
// Env: CHROMIUM (default /usr/bin/chromium), SKIP_BUILD=1 to reuse www/dist,
//      SCREENSHOT (default /tmp/mana-demo-e2e.png).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, extname, normalize, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const WWW = join(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(WWW, "dist");
const SCREENSHOT = process.env.SCREENSHOT ?? "/tmp/mana-demo-e2e.png";
const PASSPHRASE = "correct horse battery staple";
const TIMEOUT = 10_000;

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".json": "application/json",
};

/** Serves `root` on 127.0.0.1:0; unknown paths get index.html (single-page app). */
async function serve(root) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    let file = join(root, path.endsWith("/") ? `${path}index.html` : path);
    if (!file.startsWith(root)) file = join(root, "index.html");
    let body;
    try {
      body = await readFile(file);
    } catch {
      file = join(root, "index.html");
      body = await readFile(file);
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/** Opens the demo in a fresh browser context (its own IndexedDB and sessionStorage). */
async function openApp(browser, url, errors) {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console.error: ${m.text()}`);
  });
  await page.goto(url);
  await page.getByTestId("vault-status").waitFor();
  return { context, page };
}

/** Retries `check` until it stops throwing (the UI updates asynchronously). */
async function eventually(check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const text = async (page, testId) => (await page.getByTestId(testId).textContent()).trim();
const titles = (page) => page.getByTestId("note-item-title").allTextContents();

async function addNote(page, title, content) {
  await page.getByLabel("Title").fill(title);
  await page.getByLabel("Content").fill(content);
  await page.getByRole("button", { name: "Add note" }).click();
}

async function expectError(page, code) {
  await eventually(async () => assert.equal(await text(page, "error-code"), code));
}

describe("mana-sync demo app", { timeout: 120_000 }, () => {
  let server, url, browser, tmp, backupPath;
  let first; // the first browser context's { context, page }
  const errors = [];

  before(async () => {
    if (process.env.SKIP_BUILD !== "1") {
      const vite = join(WWW, "node_modules", "vite", "bin", "vite.js");
      const build = spawnSync(process.execPath, [vite, "build", "--logLevel", "warn"], {
        cwd: WWW,
        stdio: "inherit",
      });
      assert.equal(build.status, 0, "vite build failed");
    }
    ({ server, url } = await serve(DIST));
    tmp = await mkdtemp(join(tmpdir(), "mana-demo-e2e-"));
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    await browser?.close();
    server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("opens locked with an empty queue", async () => {
    first = await openApp(browser, url, errors);
    const { page } = first;
    assert.equal(await text(page, "vault-status"), "locked");
    assert.equal(await text(page, "pending-count"), "0");
    await page.getByTestId("notes-locked").waitFor();
  });

  it("unlocks with a generated key kept in sessionStorage", async () => {
    const { page } = first;
    await page.getByRole("button", { name: "Unlock" }).click();
    await eventually(async () => assert.equal(await text(page, "vault-status"), "unlocked"));
    await page.getByTestId("notes-empty").waitFor();
    const key = await page.evaluate(() => sessionStorage.getItem("mana-demo-vault-key"));
    assert.equal(atob(key).length, 32);
  });

  it("adds two notes and the live query lists them, newest first", async () => {
    const { page } = first;
    await addNote(page, "Groceries", "eggs, milk");
    await eventually(async () => assert.deepEqual(await titles(page), ["Groceries"]));
    await addNote(page, "Ideas", "a local-first notes app");
    await eventually(async () => assert.deepEqual(await titles(page), ["Ideas", "Groceries"]));
  });

  it("edits a note", async () => {
    const { page } = first;
    await page.getByRole("button", { name: "Edit Groceries" }).click();
    assert.equal(await page.getByLabel("Title").inputValue(), "Groceries");
    await page.getByLabel("Title").fill("Groceries (Saturday)");
    await page.getByLabel("Content").fill("eggs, milk, bread");
    await page.getByRole("button", { name: "Save changes" }).click();
    // The edit bumps updatedAt, so the note moves to the top.
    await eventually(async () =>
      assert.deepEqual(await titles(page), ["Groceries (Saturday)", "Ideas"]),
    );
    assert.equal(
      await page.getByTestId("note").first().getByTestId("note-item-content").textContent(),
      "eggs, milk, bread",
    );
    // The form is back in "add" mode.
    await page.getByRole("button", { name: "Add note" }).waitFor();
  });

  it("deletes a note", async () => {
    const { page } = first;
    await page.getByRole("button", { name: "Delete Ideas" }).click();
    await eventually(async () => assert.deepEqual(await titles(page), ["Groceries (Saturday)"]));
  });

  it("counts the pending changes (2 inserts, 1 update, 1 delete)", async () => {
    const { page } = first;
    await eventually(async () => assert.equal(await text(page, "pending-count"), "4"));
  });

  it("refuses writes while locked with vault_locked", async () => {
    const { page } = first;
    await page.getByRole("button", { name: "Lock" }).click();
    assert.equal(await text(page, "vault-status"), "locked");
    await page.getByTestId("notes-locked").waitFor();
    await addNote(page, "Secret", "written while locked");
    await expectError(page, "vault_locked");
    assert.equal(await text(page, "pending-count"), "4");
  });

  it("unlocks again with the same key and shows the notes", async () => {
    const { page } = first;
    await page.getByRole("button", { name: "Unlock" }).click();
    await eventually(async () => assert.equal(await text(page, "vault-status"), "unlocked"));
    await eventually(async () => assert.deepEqual(await titles(page), ["Groceries (Saturday)"]));
    assert.equal(await page.getByTestId("error").count(), 0, "the error is cleared");
  });

  it("exports a sealed backup as a .mana download", async () => {
    const { page } = first;
    await page.getByLabel("Passphrase (optional)").fill(PASSPHRASE);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export backup" }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^notes-.*\.mana$/);
    backupPath = join(tmp, download.suggestedFilename());
    await download.saveAs(backupPath);
    const bytes = await readFile(backupPath);
    assert.ok(bytes.length > 0, "the backup is not empty");
    await page.getByTestId("export-result").waitFor();
    assert.match(await text(page, "export-result"), /sealed with the passphrase/);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it("a fresh browser profile refuses the backup with a wrong passphrase", async () => {
    const second = await openApp(browser, url, errors);
    const { page } = second;
    try {
      await page.getByRole("button", { name: "Unlock" }).click();
      await page.getByTestId("notes-empty").waitFor();
      await page.getByLabel("Passphrase (optional)").fill("not the passphrase");
      await page.getByLabel("Import backup").setInputFiles(backupPath);
      await expectError(page, "wrong_passphrase");
      assert.equal(await page.getByTestId("import-report").count(), 0);
      await page.getByTestId("notes-empty").waitFor();

      // …and imports it with the right one: the notes appear through the live query.
      await page.getByLabel("Passphrase (optional)").fill(PASSPHRASE);
      await page.getByLabel("Import backup").setInputFiles(backupPath);
      await page.getByTestId("import-report").waitFor();
      assert.equal(await page.getByTestId("error").count(), 0);
      // Both rows are imported: the live note and the tombstone of the deleted one.
      assert.equal(await text(page, "import-imported"), "2");
      assert.equal(await text(page, "import-skipped"), "0");
      await eventually(async () => assert.deepEqual(await titles(page), ["Groceries (Saturday)"]));
      assert.equal(
        await page.getByTestId("note-item-content").first().textContent(),
        "eggs, milk, bread",
      );
    } finally {
      await second.context.close();
    }
  });

  it("logged no page errors", () => {
    // The library warns (console.warn, not error) when a live query runs while locked.
    assert.deepEqual(errors, []);
  });
});
