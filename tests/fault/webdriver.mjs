// The few WebDriver commands the Firefox fault case needs, spoken to geckodriver over HTTP
// (Playwright drives only its own patched Firefox; this is Debian's Firefox ESR).
import { spawn } from "node:child_process";
import net from "node:net";

const freePort = () => new Promise((ok, fail) => {
  const s = net.createServer();
  s.on("error", fail);
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
});

/** Starts geckodriver and a headless Firefox session with `prefs`. */
export async function firefox(prefs = {}) {
  const port = await freePort();
  const driver = spawn(process.env.GECKODRIVER ?? "geckodriver", ["--port", String(port)], { stdio: "ignore" });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method, path, body) => {
    const r = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
    const { value } = await r.json();
    if (!r.ok) throw new Error(`WebDriver ${method} ${path}: ${value?.error} ${value?.message}`);
    return value;
  };
  for (let i = 0; ; i++) {
    try { await fetch(`${base}/status`); break; } catch (e) { if (i > 100) throw e; }
    await new Promise((r) => setTimeout(r, 50));
  }
  const binary = process.env.FIREFOX ?? "/usr/bin/firefox-esr";
  const { sessionId } = await call("POST", "/session", {
    capabilities: { alwaysMatch: { "moz:firefoxOptions": { binary, args: ["-headless"], prefs } } },
  });
  const s = `/session/${sessionId}`;
  await call("POST", `${s}/timeouts`, { script: 60_000 });
  return {
    goto: (url) => call("POST", `${s}/url`, { url }),
    /** Runs `fn(arg)` (an async function) in the page and returns its JSON result. */
    run: (fn, arg = null) => call("POST", `${s}/execute/async`, {
      script: `const done = arguments[arguments.length - 1];
        (${fn})(arguments[0]).then((v) => done({ ok: v === undefined ? null : v }), (e) => done({ threw: String(e) }));`,
      args: [arg],
    }).then((r) => { if ("threw" in r) throw new Error(r.threw); return r.ok; }),
    close: async () => {
      await call("DELETE", s).catch(() => {});
      driver.kill();
    },
  };
}
