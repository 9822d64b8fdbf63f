// The app's one piece of shared state: the store, who is signed in, and the sync engine's
// status, pending count, last sync and conflicts, as Svelte 5 runes.
import { openStore, guestVaultKey, forgetGuestKey, deriveVaultKey, devToken, userError } from "./mana.js";

/** Fields whose lost edits the app offers to restore (the ones a user sees). */
const SHOWN_FIELDS = new Set(["title", "content", "done"]);

export class Session {
  store = $state.raw(null);
  user = $state(""); // "" = guest
  unlocked = $state(false);
  status = $state("local");
  pending = $state(0);
  lastSync = $state(null); // Date of the last round that ended "synced"
  conflicts = $state.raw([]); // SyncConflict events not yet handled
  error = $state(null); // { code, message } of the last failed action
  #sync = null;
  #offs = [];

  async open() {
    this.store = await openStore();
    this.user = this.store.userId;
    // A guest's notes are encrypted too, under a key kept on this device (see mana.js).
    if (!this.user) await this.store.unlock(guestVaultKey());
    await this.refresh();
  }

  async refresh() {
    this.unlocked = this.store.isUnlocked;
    this.pending = await this.store.pendingCount();
  }

  /** refresh() from an event handler: nobody awaits it. */
  #refreshLater = () => this.refresh().catch((e) => (this.error = userError(e)));

  /** Runs one user action: shows its error if it fails, then refreshes the counters. */
  async act(fn) {
    this.error = null;
    try {
      return await fn();
    } catch (e) {
      this.error = userError(e);
    } finally {
      await this.refresh().catch(() => {});
    }
  }

  /** Derives the user's vault key, gets a token, claims the guest's data (first sign-in on
   *  this device) or unlocks (later ones), then syncs. */
  signIn = ({ user, passphrase, server }) =>
    this.act(async () => {
      const key = await deriveVaultKey(user, passphrase);
      let token = await devToken(server, user);
      const owner = this.store.userId;
      if (!owner) {
        await this.store.signIn(user, { vaultKey: key });
        forgetGuestKey();
      } else if (owner === user) {
        await this.store.unlock(key);
      } else {
        throw Object.assign(new Error(`This device belongs to ${owner}.`), { code: "already_signed_in" });
      }
      this.user = user;
      const sync = this.store.sync({
        url: server,
        token: async (refresh) => (refresh ? (token = await devToken(server, user)) : token),
      });
      this.#offs = [
        sync.on("status", (status) => this.#onStatus(status)),
        sync.on("conflict", (c) => this.#onConflict(c)),
        sync.on("change", this.#refreshLater),
      ];
      this.#sync = sync;
      sync.start();
      this.status = sync.status;
    });

  /** Stops syncing and locks the vault (the data stays on this device, encrypted). */
  signOut() {
    this.#sync?.stop();
    for (const off of this.#offs) off();
    this.#offs = [];
    this.#sync = null;
    this.store.lock();
    this.status = "local";
    this.conflicts = [];
    this.#refreshLater();
  }

  #onStatus(status) {
    this.status = status;
    if (status === "synced") this.lastSync = new Date();
    this.#refreshLater();
  }

  #onConflict(c) {
    if (!SHOWN_FIELDS.has(c.field)) return;
    const same = (o) => o.collection === c.collection && o.id === c.id && o.field === c.field;
    this.conflicts = [...this.conflicts.filter((o) => !same(o)), c];
  }

  dismiss(c) {
    this.conflicts = this.conflicts.filter((o) => o !== c);
  }

  /** "Keep mine": writes the overwritten local value back; being newer, it wins everywhere. */
  keepMine = (c) =>
    this.act(async () => {
      await this.store.update(c.collection, c.id, { [c.field]: c.wasLocal });
      this.dismiss(c);
    });
}
