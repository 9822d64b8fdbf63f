// Everything the demo needs from mana-sync, used exactly as an app would use the npm package.
import init, { ManaStore, inspectBackup } from "mana-sync";

export { inspectBackup };

/** The two modules ("apps" in mana-sync): each is synced and backed up on its own. */
export const MODULES = {
  notes: { label: "Notes", collection: "notes" },
  tasks: { label: "Tasks", collection: "tasks" },
};

export const STORE_CONFIG = {
  name: "mana-demo",
  // No userId: the store starts as a guest store; signIn() claims it for a user.
  apps: {
    notes: {
      collections: { notes: { indexes: ["createdAt"], encrypted: ["title", "content"] } },
    },
    tasks: {
      collections: { tasks: { indexes: ["createdAt"], encrypted: ["title"] } },
    },
  },
};

/** Loads the wasm module (`--target web` output needs an explicit init) and opens the store. */
export async function openStore() {
  await init();
  return ManaStore.open(STORE_CONFIG);
}

// DEMO ONLY: a guest's vault key is kept in localStorage so the guest's notes survive a
// reload; anything there is readable by scripts on the page. Once signed in, the key is
// derived from the user's passphrase and never stored.
const GUEST_KEY = "mana-demo-guest-key";

export function guestVaultKey() {
  const saved = localStorage.getItem(GUEST_KEY);
  if (saved) return Uint8Array.from(atob(saved), (c) => c.charCodeAt(0));
  const key = ManaStore.generateVaultKey();
  localStorage.setItem(GUEST_KEY, btoa(String.fromCharCode(...key)));
  return key;
}

export const forgetGuestKey = () => localStorage.removeItem(GUEST_KEY);

/**
 * DEMO ONLY: the user's vault key, PBKDF2-SHA256 of the passphrase salted with the user id,
 * so every device of the user derives the same key. A real app would wrap a random vault key
 * with a key from the passphrase (and support changing it) instead.
 */
export async function deriveVaultKey(userId, passphrase) {
  const text = new TextEncoder();
  const base = await crypto.subtle.importKey("raw", text.encode(passphrase), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: text.encode(`mana-demo:${userId}`), iterations: 210_000 },
    base,
    256,
  );
  return new Uint8Array(bits);
}

/** The sync server: `?server=` in the page's URL, else the one `make demo` starts. */
export const defaultServer = () =>
  new URLSearchParams(location.search).get("server") ??
  import.meta.env.VITE_SYNC_URL ??
  "http://127.0.0.1:3050";

/** A token from the dev server (`mana-sync-server --dev`); a real app asks its auth service. */
export async function devToken(server, userId) {
  let res;
  try {
    res = await fetch(new URL("/dev/token", server), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId }),
    });
  } catch {
    throw Object.assign(new Error(`The sync server at ${server} can't be reached.`), { code: "network" });
  }
  if (!res.ok) {
    throw Object.assign(new Error(`The sync server refused a token (${res.status}).`), { code: "unauthorized" });
  }
  return (await res.json()).token;
}

/** Every rejection from mana-sync is an Error with a stable `.code`. */
export function errorInfo(e) {
  return { code: e?.code ?? "error", message: e?.message ?? String(e) };
}

/** What the app says for the codes a user can cause (the rest show the library's message). */
const MESSAGES = {
  wrong_vault_key: "That passphrase is not the one this device was signed in with.",
  vault_locked: "The vault is locked: sign in first.",
};

export function userError(e) {
  const { code, message } = errorInfo(e);
  return { code, message: MESSAGES[code] ?? message };
}

/** Starts a browser download of `bytes`. */
export function download(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const a = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Plain-language messages for the backup error codes (client.md "Errors"). */
export const BACKUP_MESSAGES = {
  not_a_mana_archive: "This file is not a mana backup.",
  wrong_passphrase: "Wrong passphrase: this backup was sealed with another one. Nothing was imported.",
  archive_tampered:
    "This backup was changed or damaged after it was made, so it can't be trusted. Nothing was imported.",
  wrong_passphrase_or_tampered:
    "Either the passphrase is wrong or the file was changed after it was made. Nothing was imported.",
  passphrase_required: "This backup is sealed: enter its passphrase.",
  archive_corrupt: "This backup file is damaged or incomplete. Nothing was imported.",
  archive_too_large: "This backup is too large to open here.",
  unsupported_format_version: "This backup was made by a newer version of the app.",
  vault_locked: "Sign in first: the vault is locked.",
};

/** `{ code, text }` of a failed export, inspection or import. */
export function backupFailure(e) {
  const { code, message } = errorInfo(e);
  return { code, text: BACKUP_MESSAGES[code] ?? message };
}

/** `<user>-<YYYY-MM-DD>.mana`, in local time. */
export function backupFilename(user, date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${user || "guest"}-${day}.mana`;
}
