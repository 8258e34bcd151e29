// Generates the protobuf-es TypeScript types of the buf module at the repository root
// into src/gen/ (gitignored: always derived, never edited). Uses the repo's
// .venv/bin/buf (installed by build_tools/dev.py setup), else `buf` on PATH.
//
// RENDER_SDK_PROTO_ROOT overrides the buf module directory (default: the repo root).
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const PKG = join(HERE, "..");
const ROOT = join(PKG, "..", "..");
const MODULE = resolve(process.env.RENDER_SDK_PROTO_ROOT ?? ROOT);
const PLUGIN = join(PKG, "node_modules", ".bin", "protoc-gen-es");
const OUT = join(PKG, "src", "gen");

if (!existsSync(PLUGIN)) {
  console.error(`generate: ${PLUGIN} is missing: run npm ci in clients/typescript`);
  process.exit(1);
}
const localBuf = join(ROOT, ".venv", "bin", "buf");
const buf = existsSync(localBuf) ? localBuf : "buf";
rmSync(OUT, { recursive: true, force: true });
const template = {
  version: "v2",
  plugins: [{ local: PLUGIN, out: OUT, include_imports: true, opt: ["target=ts", "import_extension=js"] }],
};
execFileSync(buf, ["generate", MODULE, "--template", JSON.stringify(template)], {
  cwd: MODULE,
  stdio: ["ignore", "inherit", "inherit"],
});
