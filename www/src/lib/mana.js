// Everything the demo needs from mana-sync, used exactly as an app would use the npm package.
import init, { ManaStore } from "mana-sync";

export const STORE_CONFIG = {
  name: "mana-demo-notes",
  userId: "demo-user",
  apps: {
    notes: {
      collections: {
        notes: { indexes: ["updatedAt"], encrypted: ["title", "content"] },
      },
    },
  },
};

/** Loads the wasm module (`--target web` output needs an explicit init) and opens the store. */
export async function openStore() {
  await init();
  return ManaStore.open(STORE_CONFIG);
}

// DEMO ONLY: the vault key is kept in sessionStorage so a reload in the same tab can unlock
// again. A real app derives it from a passphrase or keeps it in the OS keychain / a
// non-extractable CryptoKey; anything in sessionStorage is readable by scripts on the page.
const KEY_SLOT = "mana-demo-vault-key";

/** The demo's vault key: the one in sessionStorage, or a new one (stored there). */
export function demoVaultKey() {
  const saved = sessionStorage.getItem(KEY_SLOT);
  if (saved) return Uint8Array.from(atob(saved), (c) => c.charCodeAt(0));
  const key = ManaStore.generateVaultKey();
  sessionStorage.setItem(KEY_SLOT, btoa(String.fromCharCode(...key)));
  return key;
}

export function hasSavedKey() {
  return sessionStorage.getItem(KEY_SLOT) !== null;
}

/** Every rejection from mana-sync is an Error with a stable `.code`. */
export function errorInfo(e) {
  return { code: e?.code ?? "error", message: e?.message ?? String(e) };
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
