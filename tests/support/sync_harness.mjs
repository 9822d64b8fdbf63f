// A real mana-sync-server (--dev, SQLite in a temp dir) behind a small proxy that the browser
// tests can take down and bring back, plus a control endpoint for what a browser can't see:
//   GET /down      stop the server process and refuse connections (like a server that is gone)
//   GET /up        start it again on the same database, accept connections again
//   GET /reset     a fresh server on an empty database behind the same URL (the next browser's
//                  run of the suites: their record ids are fixed, and records keep their author)
//   GET /log       the requests that reached the proxy, [{method, url}], oldest first
//   GET /db-contains?s=TEXT   whether the server's database files contain TEXT (bytes)
//   GET /inject?status=N&body=TEXT   answer the next /sync request with this, not the server's
// Prints `SYNC_URL=http://…` and `CONTROL_URL=http://…` once ready; runs until killed.
//
//   node tests/support/sync_harness.mjs target/debug/mana-sync-server
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const bin = process.argv[2];
const dir = mkdtempSync(join(tmpdir(), "mana-sync-harness-"));
let upstream = null; // { proc, port }
let log = [];
let injected = null;
const sockets = new Set();

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ["--dev", "--port", "0", "--database-url", `sqlite://${join(dir, "sync.db")}`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    proc.on("error", reject);
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { upstream = { proc, port: Number(m[1]) }; resolve(); }
    });
  });
}

function stopServer() {
  return new Promise((resolve) => {
    if (!upstream) return resolve();
    const { proc } = upstream;
    upstream = null;
    proc.on("exit", () => resolve());
    proc.kill("SIGTERM");
  });
}

const proxy = http.createServer((req, res) => {
  log.push({ method: req.method, url: req.url });
  if (!upstream) { req.socket.destroy(); return; }
  if (injected && req.method !== "OPTIONS" && req.url.startsWith("/sync/")) {
    const { status, body } = injected;
    injected = null;
    res.writeHead(status, { "content-type": "application/json", "access-control-allow-origin": "*" });
    res.end(body);
    return;
  }
  const up = http.request({ host: "127.0.0.1", port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on("error", () => res.destroy());
  req.pipe(up);
});
proxy.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
proxy.on("upgrade", (req, socket, head) => {
  log.push({ method: "UPGRADE", url: req.url });
  if (!upstream) { socket.destroy(); return; }
  const up = net.connect(upstream.port, "127.0.0.1", () => {
    let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(raw + "\r\n");
    up.write(head);
    up.pipe(socket);
    socket.pipe(up);
  });
  sockets.add(up);
  up.on("close", () => { sockets.delete(up); socket.destroy(); });
  up.on("error", () => socket.destroy());
  socket.on("error", () => up.destroy());
});

function listen(server, port = 0) {
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server.address().port)));
}

function dbContains(text) {
  const needle = Buffer.from(text);
  return readdirSync(dir).some((f) => readFileSync(join(dir, f)).includes(needle));
}

const control = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  let body = { ok: true };
  if (url.pathname === "/down") {
    await stopServer();
    await new Promise((r) => { proxy.close(() => r()); for (const s of sockets) s.destroy(); });
  } else if (url.pathname === "/up") {
    await startServer();
    await listen(proxy, proxyPort);
  } else if (url.pathname === "/reset") {
    await stopServer();
    for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
    log = [];
    injected = null;
    await startServer();
  } else if (url.pathname === "/inject") {
    injected = { status: Number(url.searchParams.get("status")), body: url.searchParams.get("body") ?? "" };
  } else if (url.pathname === "/log") {
    body = log;
  } else if (url.pathname === "/db-contains") {
    body = { found: dbContains(url.searchParams.get("s") ?? "") };
  } else {
    res.writeHead(404); res.end(); return;
  }
  res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "*" });
  res.end(JSON.stringify(body));
});

await startServer();
const proxyPort = await listen(proxy);
const controlPort = await listen(control);
console.log(`SYNC_URL=http://127.0.0.1:${proxyPort}`);
console.log(`CONTROL_URL=http://127.0.0.1:${controlPort}`);
const quit = async () => { await stopServer(); process.exit(0); };
process.on("SIGTERM", quit);
process.on("SIGINT", quit);
