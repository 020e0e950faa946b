// Builds the dashboard's browser app into dist/, which the dashboard server serves
// (index.html for every page, /assets/* for the bundle).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1200 },
});
