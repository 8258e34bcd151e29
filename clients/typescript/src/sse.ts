// A text/event-stream parser (the WHATWG rules), without I/O: feed it chunks of text,
// it returns the complete events and remembers the last event id and retry delay.

/** One dispatched server-sent event. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id: string;
}

/** Incremental SSE parser; `lastEventId` is what a reconnect sends as Last-Event-ID. */
export class SseParser {
  lastEventId = "";
  retryMs: number | undefined;
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private sawCr = false;

  /** Consumes a chunk; returns the events it completed, in order. */
  feed(chunk: string): ServerSentEvent[] {
    if (this.sawCr && chunk.startsWith("\n")) chunk = chunk.slice(1); // CRLF split across chunks
    this.sawCr = chunk.endsWith("\r");
    this.buffer += chunk;
    const out: ServerSentEvent[] = [];
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? "";
    for (const line of lines) {
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  private line(line: string): ServerSentEvent | undefined {
    if (line === "") {
      const ready = this.data.length > 0;
      const ev = { event: this.event || "message", data: this.data.join("\n"), id: this.lastEventId };
      this.data = [];
      this.event = "";
      return ready ? ev : undefined;
    }
    if (line.startsWith(":")) return undefined; // comment (keep-alive ping)
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    return undefined;
  }
}
