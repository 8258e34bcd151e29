// The Render wire JSON of any message, read from the schema's wire annotations
// (render/wire/v1/options.proto) through protobuf-es reflection: no per-message code.
//
// The defaults are the ones options.proto documents: REST keys are lowerCamel, SOCKET
// keys the proto names; enums are the lowercase value name without the enum prefix;
// `optional` fields and unset messages are omitted, every other field is always sent.
import {
  create,
  getOption,
  hasOption,
  ScalarType,
  type DescEnum,
  type DescField,
  type DescMessage,
  type Message,
  type MessageShape,
} from "@bufbuild/protobuf";
import { base64Decode, base64Encode } from "@bufbuild/protobuf/wire";
import {
  BytesEncoding,
  Dialect,
  EmptyEncoding,
  dialect as fileDialect,
  field as fieldWire,
  message_dialect as messageDialect,
  value as valueWire,
  type FieldWire,
} from "./gen/render/wire/v1/options_pb.js";
import { parseJson, writeJson, type JsonNode } from "./json.js";

export { Dialect };

/** Raised when a body does not fit its message; `path` names the offending key. */
export class WireError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${path}: ${message}`);
    this.name = "WireError";
  }
}

/** The dialect a message's keys use (its own annotation, else its file's, else REST). */
export function dialectOf(desc: DescMessage): Dialect {
  if (hasOption(desc, messageDialect)) return getOption(desc, messageDialect);
  if (hasOption(desc.file, fileDialect)) return getOption(desc.file, fileDialect);
  return Dialect.REST;
}

interface FieldPlan {
  field: DescField;
  key: string;
  wire: FieldWire | undefined;
  unknownSibling: DescField | undefined;
}

const plans = new WeakMap<DescMessage, { fields: FieldPlan[]; byKey: Map<string, FieldPlan> }>();

function plan(desc: DescMessage): { fields: FieldPlan[]; byKey: Map<string, FieldPlan> } {
  const known = plans.get(desc);
  if (known) return known;
  const dialect = dialectOf(desc);
  const fields: FieldPlan[] = [];
  const byKey = new Map<string, FieldPlan>();
  for (const field of desc.fields) {
    const wire = hasOption(field, fieldWire) ? getOption(field, fieldWire) : undefined;
    if (wire?.holdsUnknownEnum) continue;
    const key = wire?.name || (dialect === Dialect.SOCKET ? field.name : field.jsonName);
    const unknownSibling = wire?.unknownEnumField
      ? desc.fields.find((f) => f.name === wire.unknownEnumField)
      : undefined;
    const p = { field, key, wire, unknownSibling };
    fields.push(p);
    for (const k of [key, field.name, field.jsonName, ...(wire?.aliases ?? [])]) {
      if (!byKey.has(k)) byKey.set(k, p);
    }
  }
  const result = { fields, byKey };
  plans.set(desc, result);
  return result;
}

/** The wire key of the field with proto name `protoName` (throws if there is none). */
export function wireKey(desc: DescMessage, protoName: string): string {
  const p = plan(desc).fields.find((x) => x.field.name === protoName);
  if (!p) throw new WireError(`no field ${protoName}`, desc.typeName);
  return p.key;
}

// ------------------------------------------------------------------ enums

function enumPrefix(e: DescEnum): string {
  const zero = e.values.find((v) => v.number === 0);
  return zero ? zero.name.replace(/UNSPECIFIED$/, "") : "";
}

function enumWireName(e: DescEnum, number: number): string | undefined {
  const v = e.values.find((x) => x.number === number);
  if (!v) return undefined;
  const w = hasOption(v, valueWire) ? getOption(v, valueWire) : undefined;
  return w?.name || v.name.slice(enumPrefix(e).length).toLowerCase();
}

function enumFromWire(e: DescEnum, text: string): number | undefined {
  for (const v of e.values) {
    const w = hasOption(v, valueWire) ? getOption(v, valueWire) : undefined;
    const names = [w?.name || v.name.slice(enumPrefix(e).length).toLowerCase(), ...(w?.aliases ?? [])];
    if (names.includes(text)) return v.number;
  }
  return undefined;
}

// ------------------------------------------------------------------ timestamps

const TS = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

function parseTimestamp(text: string, path: string): { seconds: bigint; nanos: number } {
  const m = TS.exec(text);
  if (!m) throw new WireError(`${JSON.stringify(text)} is not an RFC 3339 timestamp`, path);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d); // not Date.UTC, which reads years below 100 as 19xx
  date.setUTCHours(h, mi, s, 0);
  let seconds = date.getTime() / 1000;
  if (!m[8]) seconds -= (m[9] === "-" ? -1 : 1) * (Number(m[10]) * 3600 + Number(m[11]) * 60);
  const nanos = m[7] ? Number((m[7] + "000000000").slice(0, 9)) : 0;
  return { seconds: BigInt(seconds), nanos };
}

function formatTimestamp(seconds: bigint, nanos: number): string {
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  if (nanos === 0) return `${base}Z`;
  const digits = nanos.toString().padStart(9, "0");
  const frac = nanos % 1_000_000 === 0 ? digits.slice(0, 3) : nanos % 1000 === 0 ? digits.slice(0, 6) : digits;
  return `${base}.${frac}Z`;
}

// ------------------------------------------------------------------ encode

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function isZero(v: unknown): boolean {
  return v === "" || v === 0 || v === 0n || v === false || (v instanceof Uint8Array && v.length === 0);
}

function encodeScalar(p: FieldPlan, type: ScalarType, v: unknown): string {
  switch (type) {
    case ScalarType.STRING:
      return JSON.stringify(v);
    case ScalarType.BOOL:
      return v ? "true" : "false";
    case ScalarType.BYTES: {
      const bytes = v as Uint8Array;
      if (p.wire?.bytes === BytesEncoding.INLINE_JSON) return bytes.length ? fromUtf8.decode(bytes) : "null";
      if (bytes.length === 0 && p.wire?.empty === EmptyEncoding.NULL) return "null";
      return JSON.stringify(base64Encode(bytes));
    }
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      const n = v as number;
      if (!Number.isFinite(n)) throw new WireError(`${n} has no JSON form`, p.key);
      return Number.isInteger(n) ? n.toFixed(1) : String(n);
    }
    default:
      return String(v); // ints; int64 is a bigint: its digits, a JSON number
  }
}

function encodeElement(p: FieldPlan, v: unknown): string {
  const f = p.field;
  const kind = f.fieldKind === "list" ? f.listKind : f.fieldKind;
  if (kind === "message") return encodeMessage(f.message!, v as Message);
  if (kind === "enum") {
    const name = enumWireName(f.enum!, v as number);
    if (name === undefined) throw new WireError(`${String(v)} is not a ${f.enum!.typeName}`, p.key);
    return JSON.stringify(name);
  }
  return encodeScalar(p, f.scalar!, v);
}

function encodeMessage(desc: DescMessage, msg: Message): string {
  if (desc.typeName === "google.protobuf.Timestamp") {
    const t = msg as unknown as { seconds: bigint; nanos: number };
    return JSON.stringify(formatTimestamp(t.seconds, t.nanos));
  }
  const rec = msg as unknown as Record<string, unknown>;
  const parts: string[] = [];
  for (const p of plan(desc).fields) {
    const f = p.field;
    let v: unknown;
    if (f.oneof) {
      const o = rec[f.oneof.localName] as { case?: string; value?: unknown };
      if (o.case !== f.localName) continue;
      v = o.value;
    } else {
      v = rec[f.localName];
    }
    if (f.fieldKind === "list") {
      if (p.wire?.empty === EmptyEncoding.OMIT && (v as unknown[]).length === 0) continue;
      parts.push(`${JSON.stringify(p.key)}:[${(v as unknown[]).map((x) => encodeElement(p, x)).join(",")}]`);
      continue;
    }
    if (v === undefined) continue; // unset optional or message
    if (p.wire?.empty === EmptyEncoding.OMIT && isZero(v)) continue;
    if (f.fieldKind === "enum" && v === 0 && p.unknownSibling) {
      const text = rec[p.unknownSibling.localName] as string;
      if (text) {
        parts.push(`${JSON.stringify(p.key)}:${JSON.stringify(text)}`);
        continue;
      }
    }
    parts.push(`${JSON.stringify(p.key)}:${encodeElement(p, v)}`);
  }
  return `{${parts.join(",")}}`;
}

/** The compact wire JSON text of a message, in its schema's dialect. */
export function toWireJson<D extends DescMessage>(desc: D, msg: MessageShape<D>): string {
  return encodeMessage(desc, msg);
}

// ------------------------------------------------------------------ decode

const INT32: ReadonlySet<ScalarType> = new Set([
  ScalarType.INT32,
  ScalarType.SINT32,
  ScalarType.SFIXED32,
  ScalarType.UINT32,
  ScalarType.FIXED32,
]);

function decodeScalar(p: FieldPlan, type: ScalarType, node: JsonNode, path: string): unknown {
  const bad = (want: string): never => {
    throw new WireError(`expected ${want}, got ${node.kind}`, path);
  };
  switch (type) {
    case ScalarType.STRING:
      return node.kind === "string" ? node.value : bad("a string");
    case ScalarType.BOOL:
      return node.kind === "boolean" ? node.value : bad("a boolean");
    case ScalarType.BYTES:
      if (p.wire?.bytes === BytesEncoding.INLINE_JSON) return utf8.encode(writeJson(node));
      if (node.kind !== "string") return bad("a base64 string");
      try {
        return base64Decode(node.value);
      } catch {
        throw new WireError("not base64", path);
      }
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return node.kind === "number" ? Number(node.text) : bad("a number");
    default: {
      const text = node.kind === "number" ? node.text : node.kind === "string" ? node.value : bad("an integer");
      if (!/^-?\d+$/.test(text)) throw new WireError(`${text} is not an integer`, path);
      if (INT32.has(type)) return Number(text);
      return BigInt(text);
    }
  }
}

function decodeElement(p: FieldPlan, node: JsonNode, path: string, target: Record<string, unknown>): unknown {
  const f = p.field;
  const kind = f.fieldKind === "list" ? f.listKind : f.fieldKind;
  if (kind === "message") return decodeMessage(f.message!, node, path);
  if (kind === "enum") {
    if (node.kind !== "string") throw new WireError(`expected a string, got ${node.kind}`, path);
    const n = enumFromWire(f.enum!, node.value);
    if (n !== undefined) return n;
    if (p.unknownSibling && f.fieldKind !== "list") {
      target[p.unknownSibling.localName] = node.value;
      return 0;
    }
    throw new WireError(`${JSON.stringify(node.value)} is not a ${f.enum!.typeName}`, path);
  }
  return decodeScalar(p, f.scalar!, node, path);
}

function decodeMessage(desc: DescMessage, node: JsonNode, path: string): Message {
  if (desc.typeName === "google.protobuf.Timestamp") {
    if (node.kind !== "string") throw new WireError(`expected a timestamp string, got ${node.kind}`, path);
    return create(desc, parseTimestamp(node.value, path) as never);
  }
  if (node.kind !== "object") throw new WireError(`expected an object, got ${node.kind}`, path);
  const init: Record<string, unknown> = {};
  const { byKey } = plan(desc);
  for (const [key, value] of node.entries) {
    const p = byKey.get(key);
    if (!p || value.kind === "null") continue; // unknown keys are ignored; null is absent
    const f = p.field;
    const at = `${path}.${key}`;
    let decoded: unknown;
    if (f.fieldKind === "list") {
      if (value.kind !== "array") throw new WireError(`expected an array, got ${value.kind}`, at);
      decoded = value.items.map((item, i) => decodeElement(p, item, `${at}[${i}]`, init));
    } else {
      decoded = decodeElement(p, value, at, init);
    }
    if (f.oneof) init[f.oneof.localName] = { case: f.localName, value: decoded };
    else init[f.localName] = decoded;
  }
  return create(desc, init as never);
}

/** Decodes wire JSON text (or a parsed node) into a message of `desc`. */
export function fromWireJson<D extends DescMessage>(desc: D, body: string | JsonNode): MessageShape<D> {
  const node = typeof body === "string" ? parseJson(body) : body;
  return decodeMessage(desc, node, desc.name) as MessageShape<D>;
}
