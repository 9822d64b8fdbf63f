import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// What a user's Vite config needs for mana-sync (www/README.md "Adopting mana-sync"): keep the
// package out of the dependency pre-bundler so its .wasm URL resolves.
export default defineConfig({
  plugins: [svelte()],
  optimizeDeps: { exclude: ["mana-sync"] },
});
