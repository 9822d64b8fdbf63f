// The storage-quota fault case in Firefox ESR (Debian's, driven through geckodriver): the
// origin's storage is limited by a pref (`dom.quotaManager.temporaryStorage.fixedLimit`), since
// Firefox has no CDP quota override. Firefox differs from Chromium here (a transaction told to
// `commit()` did not abort when a request failed later: see WriteTx::commit), so this runs in both.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { serveFiles } from "./files.mjs";
import { overQuota } from "./quota.mjs";
import { firefox } from "./webdriver.mjs";

const root = resolve(new URL("../..", import.meta.url).pathname);
const QUOTA_MB = 8;
let files, ff;

before(async () => {
  files = await serveFiles(root);
  ff = await firefox({ "dom.quotaManager.temporaryStorage.fixedLimit": QUOTA_MB * 1024 }); // KiB
});

after(async () => {
  await ff?.close();
  files?.close();
});

test("Firefox: a write over the storage quota fails with quota_exceeded, writes nothing, and works once there is room", async () => {
  await ff.goto(`${files.origin}/tests/fault/client.html?user=u-quota&db=quota`);
  const error = await ff.run(async () => {
    while (!window.clientReady && !window.clientError) await new Promise((r) => setTimeout(r, 20));
    return window.clientError ?? null;
  });
  assert.equal(error, null, `client failed to open: ${error}`);
  const { quota } = await ff.run(() => navigator.storage.estimate());
  assert.equal(quota, QUOTA_MB * 1024 * 1024, "the pref limits the origin");
  const { err, usageMB } = await overQuota((fn, arg) => ff.run(fn, arg), QUOTA_MB);
  console.log(`quota (Firefox ESR, ${QUOTA_MB} MB by pref): 2 MB bulkPut with ${QUOTA_MB - 3} MB taken → ${err.code} ` +
    `("${err.message}"), nothing written; fits after the room is freed (usage ${usageMB.toFixed(1)} MB)`);
});
