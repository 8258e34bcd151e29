// A JSON reader that keeps every number's source text, and a compact writer.
//
// JSON.parse turns 9007199254740993 into 9007199254740992; task inputs and results are
// bytes of JSON text precisely so that such integers survive, so the codec reads bodies
// with this parser instead.

/** A parsed JSON value; numbers keep their source text. */
export type JsonNode =
  | { kind: "object"; entries: [string, JsonNode][] }
  | { kind: "array"; items: JsonNode[] }
  | { kind: "string"; value: string }
  | { kind: "number"; text: string }
  | { kind: "boolean"; value: boolean }
  | { kind: "null" };

/** Raised for text that is not JSON; `offset` is where reading stopped. */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = "JsonSyntaxError";
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

/** Parses JSON text into a {@link JsonNode} tree. */
export function parseJson(text: string): JsonNode {
  let pos = 0;
  const skip = (): void => {
    WS.lastIndex = pos;
    WS.exec(text);
    pos = WS.lastIndex;
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(what, pos);
  };
  const readString = (): string => {
    const start = pos;
    pos += 1;
    while (pos < text.length) {
      const c = text[pos];
      if (c === '"') {
        pos += 1;
        return JSON.parse(text.slice(start, pos)) as string;
      }
      if (c === "\\") pos += 1;
      else if (c < " ") fail("control character in string");
      pos += 1;
    }
    return fail("unterminated string");
  };
  const value = (): JsonNode => {
    skip();
    const c = text[pos];
    if (c === "{") {
      pos += 1;
      const entries: [string, JsonNode][] = [];
      skip();
      if (text[pos] === "}") {
        pos += 1;
        return { kind: "object", entries };
      }
      for (;;) {
        skip();
        if (text[pos] !== '"') fail("expected a key");
        const key = readString();
        skip();
        if (text[pos] !== ":") fail("expected ':'");
        pos += 1;
        entries.push([key, value()]);
        skip();
        if (text[pos] === ",") pos += 1;
        else if (text[pos] === "}") {
          pos += 1;
          return { kind: "object", entries };
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      pos += 1;
      const items: JsonNode[] = [];
      skip();
      if (text[pos] === "]") {
        pos += 1;
        return { kind: "array", items };
      }
      for (;;) {
        items.push(value());
        skip();
        if (text[pos] === ",") pos += 1;
        else if (text[pos] === "]") {
          pos += 1;
          return { kind: "array", items };
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { kind: "string", value: readString() };
    for (const [word, node] of [
      ["true", { kind: "boolean", value: true }],
      ["false", { kind: "boolean", value: false }],
      ["null", { kind: "null" }],
    ] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return node;
      }
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null) return fail("unexpected character");
    pos = NUMBER.lastIndex;
    return { kind: "number", text: m[0] };
  };
  const root = value();
  skip();
  if (pos !== text.length) fail("trailing characters");
  return root;
}

/** Writes a node compactly (no spaces), numbers as their source text. */
export function writeJson(node: JsonNode): string {
  switch (node.kind) {
    case "object":
      return `{${node.entries.map(([k, v]) => `${JSON.stringify(k)}:${writeJson(v)}`).join(",")}}`;
    case "array":
      return `[${node.items.map(writeJson).join(",")}]`;
    case "string":
      return JSON.stringify(node.value);
    case "number":
      return node.text;
    case "boolean":
      return node.value ? "true" : "false";
    case "null":
      return "null";
  }
}

/** A node as a plain JS value (numbers beyond 2^53 lose precision, as with JSON.parse). */
export function toPlain(node: JsonNode): unknown {
  switch (node.kind) {
    case "object":
      return Object.fromEntries(node.entries.map(([k, v]) => [k, toPlain(v)]));
    case "array":
      return node.items.map(toPlain);
    case "string":
    case "boolean":
      return node.value;
    case "number":
      return Number(node.text);
    case "null":
      return null;
  }
}

/** A plain JS value as a node (bigint is written as its digits). */
export function fromPlain(value: unknown): JsonNode {
  if (value === null || value === undefined) return { kind: "null" };
  if (typeof value === "string") return { kind: "string", value };
  if (typeof value === "boolean") return { kind: "boolean", value };
  if (typeof value === "bigint") return { kind: "number", text: value.toString() };
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${value} is not a JSON number`);
    return { kind: "number", text: JSON.stringify(value) };
  }
  if (Array.isArray(value)) return { kind: "array", items: value.map(fromPlain) };
  if (typeof value === "object") {
    return {
      kind: "object",
      entries: Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, fromPlain(v)]),
    };
  }
  throw new TypeError(`${typeof value} is not a JSON value`);
}
