// Every golden wire vector of tests/vectors (REST and socket) decodes to the golden
// binary and the golden message re-encodes to the wire bytes, through the
// annotation-driven codec (src/wire.ts).
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseJson, writeJson, type JsonNode } from "../src/json.js";
import { loadMessageSchemas } from "../src/schemas.js";
import { fromWireJson, toWireJson } from "../src/wire.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const VECTORS = join(ROOT, "tests", "vectors");

function get(node: JsonNode, key: string): JsonNode | undefined {
  return node.kind === "object" ? node.entries.find(([k]) => k === key)?.[1] : undefined;
}
function str(node: JsonNode | undefined): string {
  assert.ok(node && node.kind === "string");
  return node.value;
}
/** Order-free rendering: object keys sorted, numbers as written. */
function canonical(node: JsonNode): string {
  if (node.kind === "object") {
    const sorted = [...node.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${sorted.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  if (node.kind === "array") return `[${node.items.map(canonical).join(",")}]`;
  return writeJson(node);
}

const schemas = await loadMessageSchemas();
let total = 0;
for (const file of readdirSync(join(VECTORS, "cases")).filter((f) => f.endsWith(".json")).sort()) {
  const cases = get(parseJson(readFileSync(join(VECTORS, "cases", file), "utf8")), "cases");
  const golden = get(parseJson(readFileSync(join(VECTORS, "golden", file), "utf8")), "cases");
  assert.ok(cases?.kind === "array" && golden?.kind === "array");
  const binaries = new Map(golden.items.map((g) => [str(get(g, "name")), str(get(g, "binary_hex"))]));
  for (const c of cases.items) {
    total += 1;
    const name = str(get(c, "name"));
    test(`${file}:${name}`, () => {
      const schema = schemas.get(str(get(c, "message")));
      assert.ok(schema, `no generated message ${str(get(c, "message"))}`);
      const raw = get(c, "raw");
      const wireText = raw ? str(raw) : writeJson(get(c, "wire")!);
      const binary = Buffer.from(binaries.get(name)!, "hex");
      const decoded = fromWireJson(schema, wireText);
      assert.equal(Buffer.from(toBinary(schema, decoded)).toString("hex"), binary.toString("hex"));
      const encoded = toWireJson(schema, fromBinary(schema, binary));
      const encodesTo = get(c, "encodes_to");
      const expected = encodesTo ? writeJson(encodesTo) : wireText;
      const ordered = get(c, "ordered");
      if (ordered?.kind === "boolean" && !ordered.value) {
        assert.equal(canonical(parseJson(encoded)), canonical(parseJson(expected)));
      } else if (raw && !encodesTo) {
        assert.equal(encoded, str(raw));
      } else {
        assert.equal(encoded, writeJson(parseJson(expected)));
      }
    });
  }
}
test("every case file has cases", () => assert.ok(total >= 90, `only ${total} vectors`));
