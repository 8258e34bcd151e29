// Cross-language check: protobuf-es (TypeScript/JS) decodes every golden vector.
//
// Generates JS from the buf module at ../../proto with protoc-gen-es (local plugin from
// node_modules) into a fresh .gen-XXXXXX/ here (gitignored, removed afterwards; it sits
// under this folder so that the generated imports resolve node_modules), then for every
// vector in tests/vectors/golden:
//   fromBinary(binary) -> toJson  equals the vector's canonical ProtoJSON (Google's output),
//   fromJson(ProtoJSON) -> toBinary equals the binary, and binary re-encodes byte for byte.
// Exits non-zero on any mismatch; prints a one-line summary.
//
// Usage: node build_tools/node/check_vectors.mjs   (after `npm ci` in build_tools/node)

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const GOLDEN = join(ROOT, "tests", "vectors", "golden");
const PLUGIN = join(HERE, "node_modules", ".bin", "protoc-gen-es");

function fail(message) {
  console.error(`node cross-check: FAILED: ${message}`);
  process.exit(1);
}

function findBuf() {
  const local = join(ROOT, ".venv", "bin", "buf");
  return existsSync(local) ? local : "buf";
}

function generate() {
  if (!existsSync(PLUGIN)) fail(`${PLUGIN} is missing: run npm ci in build_tools/node`);
  const gen = mkdtempSync(join(HERE, ".gen-"));
  process.on("exit", () => rmSync(gen, { recursive: true, force: true }));
  const template = {
    version: "v2",
    plugins: [
      { local: PLUGIN, out: gen, opt: ["target=js", "import_extension=js"] },
    ],
  };
  execFileSync(findBuf(), ["generate", "--template", JSON.stringify(template)], {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit"],
  });
  return gen;
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

async function loadSchemas(gen) {
  const schemas = new Map();
  for (const file of walk(gen).filter((f) => f.endsWith("_pb.js")).sort()) {
    const module = await import(pathToFileURL(file).href);
    for (const value of Object.values(module)) {
      if (value && value.kind === "message" && value.typeName) schemas.set(value.typeName, value);
    }
  }
  return schemas;
}

function hexToBytes(hex) {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

function bytesToHex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

async function main() {
  const gen = generate();
  const { fromBinary, toBinary, toJson, fromJson } = await import("@bufbuild/protobuf");
  const schemas = await loadSchemas(gen);
  // render.wire.v1 annotates the wires and never travels itself: no vectors.
  const renderMessages = [...schemas.keys()].filter(
    (n) => n.startsWith("render.") && !n.startsWith("render.wire.v1."),
  );
  const covered = new Set();
  const problems = [];
  let count = 0;
  for (const file of readdirSync(GOLDEN).filter((f) => f.endsWith(".json")).sort()) {
    const golden = JSON.parse(readFileSync(join(GOLDEN, file), "utf8"));
    for (const vector of golden.cases) {
      count += 1;
      const where = `${file}:${vector.name}`;
      const schema = schemas.get(vector.message);
      if (!schema) {
        problems.push(`${where}: protobuf-es has no message ${vector.message}`);
        continue;
      }
      covered.add(vector.message);
      try {
        const binary = hexToBytes(vector.binary_hex);
        const msg = fromBinary(schema, binary);
        const json = toJson(schema, msg);
        if (!isDeepStrictEqual(json, vector.proto_json)) {
          problems.push(
            `${where}: toJson ${JSON.stringify(json)} != ProtoJSON ${JSON.stringify(vector.proto_json)}`,
          );
        }
        const again = bytesToHex(toBinary(schema, msg));
        if (again !== vector.binary_hex) {
          problems.push(`${where}: re-encoded binary ${again} != ${vector.binary_hex}`);
        }
        const fromProtoJson = bytesToHex(toBinary(schema, fromJson(schema, vector.proto_json)));
        if (fromProtoJson !== vector.binary_hex) {
          problems.push(`${where}: fromJson->toBinary ${fromProtoJson} != ${vector.binary_hex}`);
        }
      } catch (err) {
        problems.push(`${where}: ${err && err.message ? err.message : err}`);
      }
    }
  }
  for (const name of renderMessages) {
    if (!covered.has(name)) problems.push(`no golden vector for ${name}`);
  }
  if (count === 0) problems.push(`no vectors found in ${relative(ROOT, GOLDEN)}`);
  const version = JSON.parse(
    readFileSync(join(HERE, "node_modules", "@bufbuild", "protobuf", "package.json"), "utf8"),
  ).version;
  if (problems.length > 0) {
    for (const p of problems) console.error(p);
    fail(`${problems.length} mismatch(es) in ${count} vectors (protobuf-es ${version})`);
  }
  console.log(
    `node cross-check: ${count} vectors of ${covered.size} messages decoded by protobuf-es ${version}: all match`,
  );
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
