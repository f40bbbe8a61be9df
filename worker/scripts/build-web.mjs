// Builds the upload page (web/) into public/, the Workers static-assets folder: app.ts bundled with
// Uppy by esbuild, app.css with Uppy's styles, the HTML and _headers copied. Run by wrangler's [build] command, so
// `wrangler dev` and `wrangler deploy` both serve a fresh build; public/ is not committed.
// Several wrangler processes may build at once (the AppHost, tests, the benchmark): each builds into its
// own folder and renames the finished files into public/, so nobody ever sees public/ missing or half written.
import { build } from "esbuild";
import { copyFile, mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "web");
const out = join(root, "public");

await mkdir(out, { recursive: true });
const staging = await mkdtemp(join(root, ".public-"));
try {
  // app.ts with Uppy and tus-js-client; app.css with Uppy's styles (its @imports) — no CDN, nothing inline.
  await build({
    entryPoints: [join(web, "app.ts"), join(web, "app.css")],
    outdir: staging,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: true,
    logLevel: "warning",
  });
  for (const file of ["index.html", "_headers"]) {
    await copyFile(join(web, file), join(staging, file));
  }
  for (const file of await readdir(staging)) {
    await rename(join(staging, file), join(out, file));
  }
} finally {
  await rm(staging, { recursive: true, force: true });
}
