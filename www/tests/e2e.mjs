// End to end: the production build of the demo against a real `mana-sync-server --dev`, in
// Debian's Chromium (playwright-core). Two browser contexts are two devices of one user; a
// third is a fresh device for the backup import.
//
//   node --test tests/e2e.mjs     (scripts/ci/test-demo.sh builds pkg/ and the server first)
//
// Env: CHROMIUM (default /usr/bin/chromium), MANA_SYNC_SERVER (default
// ../target/debug/mana-sync-server), SKIP_BUILD=1 to reuse www/dist. Screenshots go to
// www/test-results/.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  WWW, TIMEOUT, buildApp, serveStatic, startSyncServer, launchChromium, eventually,
} from "./harness.mjs";

const SHOTS = join(WWW, "test-results");
const USER = "alice";
const PASSPHRASE = "correct horse battery staple";
const BACKUP_PASSPHRASE = "backup passphrase";

describe("mana-sync demo: two devices of one user", { timeout: 180_000 }, () => {
  let app, server, browser, tmp;
  let laptop, phone; // the two devices: { name, context, page }
  const errors = [];

  /** A fresh browser context (its own IndexedDB and storage) on the demo. */
  async function openDevice(name) {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on("pageerror", (e) => errors.push(`${name}: pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      // Strict: while the browser is offline the sync engine sends nothing, so not even a
      // request refused by the offline emulation may show up here.
      errors.push(`${name}: console.error: ${m.text()} (${m.location().url})`);
    });
    await page.goto(`${app.url}?server=${encodeURIComponent(server.url)}`);
    await page.getByRole("form", { name: "New note" }).waitFor();
    return { name, context, page };
  }

  const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const statusOf = (page) => page.getByRole("status").getAttribute("data-status");
  const pendingOf = async (page) => Number(await page.getByTestId("pending-count").textContent());
  const waitStatus = (page, status, timeout) =>
    eventually(async () => assert.equal(await statusOf(page), status), timeout);
  const noteTitles = (page) => page.getByTestId("note-title").allTextContents();
  const note = (page, title) => page.getByTestId("note").filter({ hasText: title });
  const task = (page, title) => page.getByTestId("task").filter({ hasText: title });
  const go = (page, name) => page.getByRole("navigation").getByRole("link", { name }).click();

  async function addNote(page, title, content = "") {
    const form = page.getByRole("form", { name: "New note" });
    await form.getByLabel("Title").fill(title);
    await form.getByLabel("Content").fill(content);
    await form.getByRole("button", { name: "Add" }).click();
    await note(page, title).waitFor();
  }

  async function editNoteTitle(page, from, to) {
    await note(page, from).getByRole("button", { name: "Edit" }).click();
    const form = page.getByRole("form", { name: "Edit note" });
    await form.getByLabel("Title").fill(to);
    await form.getByRole("button", { name: "Save" }).click();
    await note(page, to).waitFor();
  }

  async function signIn(page, passphrase = PASSPHRASE) {
    const form = page.getByRole("form", { name: "Sign in" });
    await form.getByLabel("User").fill(USER);
    await form.getByLabel("Passphrase").fill(passphrase);
    await form.getByRole("button", { name: "Sign in" }).click();
  }

  before(async () => {
    buildApp();
    await mkdir(SHOTS, { recursive: true });
    tmp = await mkdtemp(join(tmpdir(), "mana-demo-e2e-"));
    [app, server, browser] = await Promise.all([
      serveStatic(join(WWW, "dist")),
      startSyncServer(),
      launchChromium(),
    ]);
  });

  after(async () => {
    await browser?.close();
    app?.close();
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("works as a guest before sign-in: status local, changes pending", async () => {
    laptop = await openDevice("laptop");
    const { page } = laptop;
    assert.equal(await statusOf(page), "local");
    assert.match(await page.getByRole("status").textContent(), /Local only/);
    await addNote(page, "Written as a guest", "on the laptop, before signing in");
    await eventually(async () => assert.equal(await pendingOf(page), 1));
    await shot(page, "1-notes-guest");
  });

  it("signs in: the guest's note is claimed and synced", async () => {
    const { page } = laptop;
    await signIn(page);
    await waitStatus(page, "synced");
    await eventually(async () => assert.equal(await pendingOf(page), 0));
    await page.getByTestId("last-sync").waitFor();
    assert.equal(await page.getByTestId("signed-in-user").textContent(), USER);
    assert.deepEqual(await noteTitles(page), ["Written as a guest"]);
    await shot(page, "2-synced");
  });

  it("a guest note written before sign-in reaches the other device after sign-in", async () => {
    phone = await openDevice("phone");
    const { page } = phone;
    await addNote(page, "Phone guest note");
    await signIn(page);
    await waitStatus(page, "synced");
    // The phone reads the laptop's note (same passphrase, same vault key)…
    await note(page, "Written as a guest").waitFor();
    assert.equal(
      await note(page, "Written as a guest").getByTestId("note-content").textContent(),
      "on the laptop, before signing in",
    );
    // …and the laptop gets the phone's guest note, live.
    await note(laptop.page, "Phone guest note").waitFor();
  });

  it("a note added on one device appears on the other within 2 s, without reload", async () => {
    const started = Date.now();
    await addNote(laptop.page, "Live note", "typed on the laptop");
    await note(phone.page, "Live note").waitFor({ timeout: 2_000 });
    const ms = Date.now() - started;
    assert.ok(ms < 2_000, `took ${ms} ms`);
    console.log(`# live note reached the other device in ${ms} ms`);
  });

  it("a task toggled on one device is toggled on the other", async () => {
    await go(laptop.page, "Tasks");
    await go(phone.page, "Tasks");
    const form = laptop.page.getByRole("form", { name: "New task" });
    await form.getByLabel("Title").fill("Buy milk");
    await form.getByRole("button", { name: "Add" }).click();
    const done = (page) => task(page, "Buy milk").getByRole("checkbox", { name: "Done" });
    await done(phone.page).waitFor();
    assert.equal(await done(phone.page).isChecked(), false);
    await done(laptop.page).check();
    await eventually(async () => assert.equal(await done(phone.page).isChecked(), true));
    // An edit of the (encrypted) title travels too, and keeps `done`.
    await task(phone.page, "Buy milk").getByRole("button", { name: "Edit" }).click();
    const edit = phone.page.getByRole("form", { name: "Edit task" });
    await edit.getByLabel("Title").fill("Buy oat milk");
    await edit.getByRole("button", { name: "Save" }).click();
    await task(laptop.page, "Buy oat milk").waitFor();
    assert.equal(await task(laptop.page, "Buy oat milk").getByRole("checkbox", { name: "Done" }).isChecked(), true);
    await go(laptop.page, "Notes");
    await go(phone.page, "Notes");
  });

  it("a note added offline shows offline and the pending count, then syncs when back online", async () => {
    const { page, context } = phone;
    await context.setOffline(true);
    await waitStatus(page, "offline");
    await addNote(page, "Written offline");
    await eventually(async () => assert.equal(await pendingOf(page), 1));
    assert.equal(await statusOf(page), "offline");
    assert.match(await page.getByRole("status").textContent(), /Offline/);
    await shot(page, "3-offline-pending");
    await context.setOffline(false);
    await waitStatus(page, "synced");
    await eventually(async () => assert.equal(await pendingOf(page), 0));
    await note(laptop.page, "Written offline").waitFor();
  });

  it("concurrent title edits: the losing device shows the conflict toast; Keep mine wins everywhere", async () => {
    await laptop.context.setOffline(true);
    await phone.context.setOffline(true);
    await waitStatus(laptop.page, "offline");
    await waitStatus(phone.page, "offline");
    await editNoteTitle(laptop.page, "Live note", "Title from the laptop");
    await editNoteTitle(phone.page, "Live note", "Title from the phone"); // later: it wins
    await laptop.context.setOffline(false);
    await waitStatus(laptop.page, "synced");
    await phone.context.setOffline(false);
    await waitStatus(phone.page, "synced");

    const toast = laptop.page.getByTestId("conflict-toast").filter({ hasText: "Title from the laptop" });
    await toast.waitFor();
    assert.equal(await toast.getByTestId("conflict-mine").textContent(), "Title from the laptop");
    assert.equal(await toast.getByTestId("conflict-theirs").textContent(), "Title from the phone");
    await note(laptop.page, "Title from the phone").waitFor();
    await shot(laptop.page, "4-conflict-toast");

    await toast.getByRole("button", { name: "Keep mine" }).click();
    await toast.waitFor({ state: "detached" });
    for (const { page } of [laptop, phone]) {
      await note(page, "Title from the laptop").waitFor();
      assert.equal(await note(page, "Title from the phone").count(), 0);
    }
    // Keep mine was written knowing the phone's value: for the phone that is an ordinary edit,
    // not a lost one — no toast there (and none on either device for the earlier task edits).
    await note(phone.page, "Title from the laptop").waitFor();
    await waitStatus(phone.page, "synced");
    assert.equal(await phone.page.getByTestId("conflict-toast").count(), 0);
    assert.equal(await laptop.page.getByTestId("conflict-toast").count(), 0);
  });

  it("a note deleted on one device disappears on the other", async () => {
    await note(laptop.page, "Phone guest note").getByRole("button", { name: "Delete" }).click();
    await note(laptop.page, "Phone guest note").waitFor({ state: "detached" });
    await note(phone.page, "Phone guest note").waitFor({ state: "detached" });
  });

  let backupPath;

  it("exports a sealed backup of one module, with a progress bar", async () => {
    const { page } = laptop;
    await go(page, "Settings");
    const form = page.getByRole("form", { name: "Export" });
    await form.getByRole("checkbox", { name: "Notes" }).uncheck();
    await form.getByLabel("Passphrase").fill(BACKUP_PASSPHRASE);
    const download = page.waitForEvent("download");
    await form.getByRole("button", { name: "Export backup" }).click();
    const bar = form.getByRole("progressbar", { name: "Export progress" });
    await bar.waitFor();
    await shot(page, "5-backup-progress");
    const file = await download;
    await bar.waitFor({ state: "detached" });
    const day = new Date().toLocaleDateString("sv"); // YYYY-MM-DD, local time like the app
    assert.equal(file.suggestedFilename(), `${USER}-${day}.mana`);
    backupPath = join(tmp, file.suggestedFilename());
    await file.saveAs(backupPath);
    assert.match(await form.getByTestId("export-result").textContent(), /sealed with your passphrase/);
  });

  it("imports it into a fresh device: wrong passphrase, tampered and non-backup files get their own message; then only that module comes back", async () => {
    const fresh = await openDevice("fresh");
    const { page } = fresh;
    try {
      await go(page, "Settings");
      const form = page.getByRole("form", { name: "Import" });
      const fileInput = form.getByLabel("Backup file");
      const message = form.getByTestId("import-error");

      await fileInput.setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") });
      await message.waitFor();
      assert.equal(await message.getAttribute("data-code"), "not_a_mana_archive");
      assert.equal(await message.textContent(), "This file is not a mana backup.");
      assert.equal(await form.getByRole("button", { name: "Import backup" }).count(), 0);

      const bytes = await readFile(backupPath);
      const tampered = Buffer.from(bytes);
      tampered[tampered.length - 200] ^= 0x01;
      const tamperedPath = join(tmp, "tampered.mana");
      await writeFile(tamperedPath, tampered);
      await fileInput.setInputFiles(tamperedPath);
      const sealedPassphrase = form.getByLabel("Passphrase");
      await sealedPassphrase.fill(BACKUP_PASSPHRASE);
      await form.getByRole("button", { name: "Import backup" }).click();
      await message.waitFor();
      assert.equal(await message.getAttribute("data-code"), "archive_tampered");
      assert.match(await message.textContent(), /^This backup was changed or damaged/);

      await fileInput.setInputFiles(backupPath);
      await form.getByTestId("import-file").waitFor();
      assert.match(await form.getByTestId("import-file").innerText(), /a backup of alice from .*, sealed: Tasks \(1\)\./);
      await sealedPassphrase.fill("not the passphrase");
      await form.getByRole("button", { name: "Import backup" }).click();
      await eventually(async () => assert.equal(await message.getAttribute("data-code"), "wrong_passphrase"));
      assert.match(await message.textContent(), /^Wrong passphrase/);
      assert.equal(await form.getByTestId("import-summary").count(), 0);

      await sealedPassphrase.fill(BACKUP_PASSPHRASE);
      await form.getByRole("button", { name: "Import backup" }).click();
      const summary = form.getByTestId("import-summary");
      await summary.waitFor();
      assert.deepEqual(await summary.getByRole("listitem").allTextContents(), ["Tasks: 1 imported, 0 unchanged"]);
      await shot(page, "6-backup-imported");

      await go(page, "Tasks");
      await task(page, "Buy oat milk").waitFor();
      assert.equal(await task(page, "Buy oat milk").getByRole("checkbox", { name: "Done" }).isChecked(), true);
      await go(page, "Notes");
      await page.getByTestId("empty").waitFor();
    } finally {
      await fresh.context.close();
    }
  });

  it("sign out locks the vault; signing in again needs the same passphrase", async () => {
    const { page } = phone;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("locked").waitFor();
    assert.equal(await statusOf(page), "local");
    await signIn(page, "another passphrase");
    await page.getByTestId("error").waitFor();
    assert.equal(await page.getByTestId("error-code").textContent(), "wrong_vault_key");
    await page.getByTestId("locked").waitFor();
    await signIn(page);
    await waitStatus(page, "synced");
    await note(page, "Title from the laptop").waitFor();
  });

  it("names every control (label or aria-label), with the names the issue lists", async () => {
    const { page } = phone;
    const named = {
      Notes: { textbox: ["Title", "Content"], button: ["Sign out", "Add", "Save", "Delete"] },
      Tasks: { textbox: ["Title"], button: ["Add", "Save", "Delete"], checkbox: ["Done"] },
      Settings: { textbox: ["Passphrase"], button: ["Export backup", "Import backup"] },
    };
    for (const [name, roles] of Object.entries(named)) {
      await go(page, name);
      const seen = new Set();
      const look = async () => {
        for (const [role, names] of Object.entries(roles)) {
          for (const n of names) {
            if (await page.getByRole(role, { name: n, exact: true }).count()) seen.add(`${role} "${n}"`);
          }
        }
      };
      await look();
      // Open an editor, and (on Settings) choose a sealed file, so Save / Import show up.
      if (name !== "Settings") {
        await page.getByTestId(name === "Notes" ? "note" : "task").first().getByRole("button", { name: "Edit" }).click();
      } else {
        await page.getByLabel("Backup file").setInputFiles(backupPath);
        await page.getByRole("form", { name: "Import" }).getByLabel("Passphrase").waitFor();
      }
      await look();
      const wanted = Object.entries(roles).flatMap(([role, names]) => names.map((n) => `${role} "${n}"`));
      assert.deepEqual(wanted.filter((w) => !seen.has(w)), [], `${name}: missing names`);
      const unnamed = await page.evaluate(() =>
        [...document.querySelectorAll("button, input, textarea, select")]
          .filter((el) => !(el.labels?.length || el.ariaLabel || el.getAttribute("aria-labelledby") ||
            (el.tagName === "BUTTON" && el.textContent.trim())))
          .map((el) => el.outerHTML),
      );
      assert.deepEqual(unnamed, [], `${name}: controls without a name`);
    }
    await go(page, "Notes");
    assert.equal(await page.getByRole("status").count(), 1);
    await page.getByRole("button", { name: "Sign out" }).click();
    for (const n of ["User", "Passphrase"]) {
      assert.equal(await page.getByRole("textbox", { name: n, exact: true }).count(), 1, n);
    }
    assert.equal(await page.getByRole("button", { name: "Sign in", exact: true }).count(), 1);
    await signIn(page);
    await waitStatus(page, "synced");
  });

  it("logged no console errors and no page errors on any page", () => {
    assert.deepEqual(errors, []);
  });
});
