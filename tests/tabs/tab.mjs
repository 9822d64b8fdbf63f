// One tab of an app that syncs: opened by tabs.test.mjs as
// tab.html?server=URL&user=ID&db=NAME. Exposes `window.tab` for the test to drive.
import init, { ManaStore } from "../../pkg/mana_sync.js";

const params = new URLSearchParams(location.search);
const server = params.get("server");
const user = params.get("user");
const APPS = { tabs: { collections: { notes: { indexes: [] } } } };

async function token() {
  const r = await fetch(`${server}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: user }),
  });
  return (await r.json()).token;
}

try {
  await init();
  const tok = await token();
  const store = await ManaStore.open({ name: params.get("db"), userId: user, apps: APPS });
  const sync = store.sync({ url: server, token: () => tok });
  const statuses = [];
  sync.on("status", (s) => statuses.push(s));
  let count = null;
  store.liveQuery("notes").subscribe((rows) => { if (rows) count = rows.length; });
  if (params.get("start") !== "0") sync.start();
  window.tab = {
    store,
    sync,
    statuses,
    count: () => count,
    state: () => ({ leader: sync.isLeader, status: sync.status }),
    put: (id, title) => store.put("notes", { id, title }),
    bulkPut: (prefix, n) =>
      store.bulkPut("notes", Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, title: `${prefix} ${i}` }))),
    syncNow: () => sync.syncNow(),
    pending: () => store.pendingCount(),
  };
  window.tabReady = true;
} catch (e) {
  window.tabError = `${e.code ?? ""} ${e.message ?? e}`;
}
