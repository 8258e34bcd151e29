// Every message of the buf module, by full name (for tests and generic tools).
import type { DescMessage } from "@bufbuild/protobuf";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const GEN = join(dirname(fileURLToPath(import.meta.url)), "gen");

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** Imports every generated `_pb` module and returns its message schemas by type name. */
export async function loadMessageSchemas(): Promise<Map<string, DescMessage>> {
  const out = new Map<string, DescMessage>();
  for (const file of walk(GEN).filter((f) => f.endsWith("_pb.js")).sort()) {
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      const desc = value as DescMessage;
      if (desc && desc.kind === "message" && desc.typeName) out.set(desc.typeName, desc);
    }
  }
  return out;
}
