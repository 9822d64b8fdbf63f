// What the demo's end-to-end test runs against: a real mana-sync-server (--dev, SQLite in a
// temp dir, free port), the production build (vite build, served by a tiny static server),
// and Debian's Chromium through playwright-core (never a downloaded browser).
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, extname, normalize, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const WWW = join(dirname(fileURLToPath(import.meta.url)), "..");
export const TIMEOUT = 10_000;

/** `vite build` of www/ into www/dist (skipped with SKIP_BUILD=1). */
export function buildApp() {
  if (process.env.SKIP_BUILD === "1") return;
  const vite = join(WWW, "node_modules", "vite", "bin", "vite.js");
  const build = spawnSync(process.execPath, [vite, "build", "--logLevel", "warn"], {
    cwd: WWW,
    stdio: "inherit",
  });
  if (build.status !== 0) throw new Error("vite build failed");
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
};

/** Serves `root` on 127.0.0.1 (free port); unknown paths get index.html. */
export async function serveStatic(root) {
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
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

/** `mana-sync-server --dev` on a free port and a fresh SQLite database; stop() ends both. */
export async function startSyncServer() {
  const bin = process.env.MANA_SYNC_SERVER ?? join(WWW, "..", "target", "debug", "mana-sync-server");
  const dir = await mkdtemp(join(tmpdir(), "mana-demo-server-"));
  const proc = spawn(bin, ["--dev", "--port", "0", "--database-url", `sqlite://${join(dir, "sync.db")}`], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  const url = await new Promise((resolve, reject) => {
    proc.on("error", reject);
    proc.on("exit", (code) => reject(new Error(`mana-sync-server exited (${code})`)));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
  });
  return {
    url,
    async stop() {
      if (proc.exitCode === null) {
        await new Promise((resolve) => {
          proc.once("exit", resolve);
          proc.kill("SIGTERM");
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function launchChromium() {
  return chromium.launch({
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
}

/** Retries `check` until it stops throwing (the UI updates asynchronously). */
export async function eventually(check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
