// Build the SDK into sync's static folder: an ES module and a classic script from the same
// source. `node build.mjs --check` fails when the committed builds are not current.
import { build } from "esbuild";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here("../../services/sync/static/sdk/");
const check = process.argv.includes("--check");
const banner = "/* Pigeonhole web SDK — source and licence: sdk/web in the Pigeonhole repository. */";

const common = {
  bundle: true,
  target: ["es2020"], // evergreen browsers of the last few years (docs/web-sdk.md)
  legalComments: "none",
  minify: true,
  banner: { js: banner },
  logLevel: "warning",
  logOverride: { "empty-import-meta": "silent" }, // the classic build finds its URL itself
  write: !check,
};

const builds = [
  { entryPoints: [here("src/index.js")], format: "esm", outfile: out + "pigeonhole.mjs" },
  { entryPoints: [here("src/classic.js")], format: "iife", outfile: out + "pigeonhole.js" },
];

let stale = [];
for (const options of builds) {
  const result = await build({ ...common, ...options });
  if (!check) continue;
  const built = result.outputFiles[0].text;
  const committed = await readFile(options.outfile, "utf8").catch(() => "");
  if (built !== committed) stale.push(options.outfile);
}
if (stale.length) {
  console.error(`stale SDK build: ${stale.join(", ")}; run \`npm run build\` in sdk/web`);
  process.exit(1);
}
