// The storage-quota fault case, the same in every browser: `run(fn, arg)` runs `fn(arg)` in a
// client page (client.html, no server) whose origin may hold `quotaMB` megabytes.
import assert from "node:assert/strict";

const MB = 1024 * 1024;

export async function overQuota(run, quotaMB) {
  // Another database takes most of the room; the store gets a few records.
  const fillerMB = quotaMB - 3;
  await run((b) => window.client.filler(b), fillerMB * MB);
  assert.equal(await run(() => window.client.bulkPut("small", 5, 1000)), null);
  const pending = await run(() => window.client.pending());
  assert.equal(pending, 5);

  // 4 records of 0.5 MB (each stored twice: the record and its pending change) do not fit.
  const err = await run((size) => window.client.bulkPut("big", 4, size), MB / 2);
  assert.ok(err, "a write over the quota fails");
  assert.equal(err.isError, true, `an Error: ${JSON.stringify(err)}`);
  assert.equal(err.code, "quota_exceeded", `.code: ${JSON.stringify(err)}`);
  assert.equal(await run(() => window.client.pending()), pending, "no pending row written");
  assert.equal(await run(() => window.client.rawCount()), 5, "no record written");
  for (let i = 0; i < 4; i++) assert.equal(await run((id) => window.client.get(id), `big-${i}`), null);
  // (In Firefox the write right after a quota abort is refused whatever its size, as
  // `quota_exceeded` too: see dom_error in src/web/idb_write.rs.)
  const single = await run((size) => window.client.put("one-big", "one big record", size), 3 * MB);
  assert.equal(single?.code, "quota_exceeded", `put over the quota: ${JSON.stringify(single)}`);
  assert.equal(await run(() => window.client.get("one-big")), null);
  assert.equal(await run(() => window.client.pending()), pending);

  // Room freed (the other database deleted): writes work again, the big one included.
  await run(() => window.client.dropFiller());
  assert.equal(await run(() => window.client.put("after", "a small write")), null);
  assert.equal((await run(() => window.client.get("after"))).title, "a small write");
  assert.equal(await run((size) => window.client.bulkPut("big", 4, size), MB / 2), null);
  assert.equal(await run(() => window.client.rawCount()), 5 + 1 + 4);
  assert.equal((await run(() => window.client.get("big-3"))).body.length, MB / 2);
  assert.equal(await run(() => window.client.pending()), pending + 1 + 4);
  const { usage } = await run(() => window.client.estimate());
  return { err, usageMB: usage / MB };
}
