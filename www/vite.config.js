import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

export default defineConfig({
  plugins: [svelte()],
  // `mana-sync` is `file:../pkg`, a symlink to the wasm-pack output outside this folder.
  // Keep it out of the dependency pre-bundler so its `new URL("mana_sync_bg.wasm",
  // import.meta.url)` still points at the .wasm file, and let the dev server read it.
  optimizeDeps: { exclude: ["mana-sync"] },
  server: { fs: { allow: [".."] } },
});
