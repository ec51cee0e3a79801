// Bundles the console into dist/ (index.html, console.js, console.css) with fixed options,
// so the same sources give byte-identical files: no source maps, no timestamps, no
// absolute paths, no legal comments. iamd embeds dist/ at compile time (src/server/console.rs),
// and CI rebuilds it and fails when the committed files differ.
import { copyFile, mkdir } from "node:fs/promises";
import { build } from "esbuild";

const here = new URL(".", import.meta.url);
process.chdir(here.pathname);
await mkdir("dist", { recursive: true });
const common = {
  bundle: true,
  minify: true,
  legalComments: "none",
  sourcemap: false,
  charset: "utf8",
  logLevel: "warning",
  target: "es2022",
};
await build({ ...common, entryPoints: ["src/main.ts"], outfile: "dist/console.js", format: "esm" });
await build({ ...common, entryPoints: ["console.css"], outfile: "dist/console.css" });
await copyFile("index.html", "dist/index.html");
