// Opens the consumer app's production build (served at process.argv[2]) in Debian's Chromium
// through playwright-core (tools/node_modules; never downloads a browser) and checks that it
// wrote a record and read it back, with no console error and no page error.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const root = resolve(new URL("../..", import.meta.url).pathname);
const { chromium } = createRequire(join(root, "tools/package.json"))("playwright-core");
const url = process.argv[2];

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});
const errors = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  await page.goto(url);
  const result = page.locator("#result");
  await result.filter({ hasNotText: "loading" }).waitFor({ timeout: 30_000 });
  const text = await result.textContent();
  assert.deepEqual(JSON.parse(text.startsWith("{") ? text : JSON.stringify({ text })), {
    title: "Hello from a fresh app",
    listed: ["n1"],
    pending: 1,
  });
  assert.deepEqual(errors, [], "console or page errors");
  console.log(`package smoke: ok (${text})`);
} finally {
  await browser.close();
}
