import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// Builds into the Python package, which serves it at / (src/aimass/api/ui.py).
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "../src/aimass/api/ui_dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // No inline <script>/<style>: the server's CSP allows only files from 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
});
