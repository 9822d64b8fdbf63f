// Type-checks a typical app's use of the generated typings (`tsc --noEmit` in make test).
// Not executed: the browser tests run the same calls for real.
import init, { ManaStore, ManaSync, LiveQuery, mergeChanges, inspectBackup, packBackup } from "../../pkg/mana_sync.js";
import type { StoreConfig, ManaRecord, ManaError, ErrorCode, Change, MergeResult, ListQuery, BackupInfo, BackupPhase, ImportReport, TableReport, ProgressFn, SyncStatus, SyncConflict, SyncChange, SyncOptions } from "../../pkg/mana_sync.js";

interface Note extends ManaRecord { title: string; updatedAt: number }

export async function app(): Promise<number> {
  await init();
  const config: StoreConfig = {
    name: "notes-app",
    userId: "u1",
    apps: { notes: { collections: { notes: { indexes: ["updatedAt"], encrypted: ["title", "content"] } } } },
  };
  const store: ManaStore = await ManaStore.open(config);
  await store.unlock(ManaStore.generateVaultKey());
  const note: Note = { id: "n1", title: "Hello", updatedAt: Date.now() };
  await store.put("notes", note);
  await store.put("notes", note, { actor: { kind: "ai", model: "x" } });
  await store.bulkPut("notes", [note]);
  await store.update("notes", "n1", { title: "Hi" });
  await store.delete("notes", "n1");
  const one: ManaRecord | undefined = await store.get("notes", "n1");
  const query: ListQuery = { index: "updatedAt", range: { lower: 0 }, includeDeleted: false, limit: 10 };
  const all: ManaRecord[] = await store.list("notes", query);
  const live: LiveQuery = store.liveQuery("notes");
  const unsubscribe: () => void = live.subscribe((rows) => console.log(rows?.length));
  unsubscribe();
  const changes: Change[] = [];
  try {
    const merged: MergeResult = mergeChanges(changes);
    console.log(merged.record.id, merged.conflicts.length);
  } catch (e) {
    const code: ErrorCode = (e as ManaError).code;
    if (code === "vault_locked" || code === "invalid_change") console.log(code);
  }
  const seen = new Set<BackupPhase>();
  const onProgress: ProgressFn = (phase, done, total) => { seen.add(phase); console.log(phase, done, total); };
  const merging: BackupPhase = "merge";
  const archive: Uint8Array = await store.exportBackup({ appIds: ["notes"], passphrase: "pw", onProgress });
  const info: BackupInfo = inspectBackup(archive);
  const report: ImportReport = await store.importBackup(archive, { passphrase: info.sealed ? "pw" : undefined });
  const packed: Uint8Array = await packBackup({ notes: [{ id: "x", title: "t" }] }, { userId: "u1", passphrase: "pw", onProgress });
  const notes: TableReport | undefined = report.tables["notes"];
  console.log(report.imported, report.skipped, notes?.imported, packed.length, seen.has(merging), info.manifest.rowCounts);
  const options: SyncOptions = { url: "https://sync.example.com", token: async () => "jwt", apps: ["notes"] };
  const sync: ManaSync = store.sync(options);
  const off: () => void = sync.on("status", (s: SyncStatus) => console.log(s));
  sync.on("conflict", (c: SyncConflict) => console.log(c.field, c.wasLocal, c.nowServer));
  sync.on("change", (c: SyncChange) => console.log(c.collection, c.ids.length));
  sync.on("change", (c) => console.log(c.ids.length)); // the payload's type follows the event
  // @ts-expect-error a "change" callback is handed a SyncChange, not a SyncConflict
  sync.on("change", (c: SyncConflict) => console.log(c.field));
  // @ts-expect-error no such event
  sync.on("statuses", () => {});
  off();
  sync.start();
  await sync.syncNow();
  const status: SyncStatus = sync.status;
  console.log(status, sync.isLeader);
  sync.stop();
  off();
  const guest: ManaStore = await ManaStore.open({ name: "guest", apps: config.apps });
  await guest.signIn("u1", { vaultKey: ManaStore.generateVaultKey() });
  await guest.signIn("u1"); // options are optional
  console.log(guest.userId);
  const n: number = await store.pendingCount();
  store.lock();
  await store.close();
  return n + all.length + (one ? 1 : 0) + store.clientId.length;
}
