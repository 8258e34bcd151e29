// A small typed client of the Workflows REST API (Render's and the local server's).
// Every route comes from the (render.wire.v1.http) binding of its rpc in
// workflows_service.proto; bodies go through the annotation-driven codec.
import { create, getOption, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import {
  TaskRunStatus,
  TaskRunDetailsSchema,
  TaskRunEventSchema,
  type ListTaskRunsRequest,
  type TaskRun,
  type TaskRunDetails,
  type TaskRunEvent,
} from "./gen/render/workflows/v1/task_run_pb.js";
import { WorkflowsService } from "./gen/render/workflows/v1/workflows_service_pb.js";
import { http as httpOption, service_http as serviceHttp } from "./gen/render/wire/v1/options_pb.js";
import { parseJson, writeJson, type JsonNode } from "./json.js";
import { SseParser } from "./sse.js";
import { fromWireJson, toWireJson, wireKey } from "./wire.js";

/** The root of this package's errors. */
export class RenderError extends Error {
  override name = "RenderError";
}

/** A non-2xx answer; `status` is the HTTP status, `body` the raw error body. */
export class ApiError extends RenderError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly body: string,
  ) {
    super(`HTTP ${status}: ${message}`);
  }
}

/** A run that ended without succeeding (failed or canceled). */
export class TaskRunError extends RenderError {
  override name = "TaskRunError";
  constructor(readonly run: TaskRunDetails) {
    super(`task run ${run.id} ${TaskRunStatus[run.status]?.toLowerCase() ?? run.unknownStatus}: ${run.error ?? ""}`);
  }
}

/** Options of {@link WorkflowsClient}. */
export interface ClientOptions {
  /** The server without /v1, e.g. "http://127.0.0.1:8120" or "https://api.render.com". */
  baseUrl: string;
  /** Sent as a Bearer token when given. */
  apiKey?: string;
  /** How often {@link WorkflowsClient.streamEvents} reconnects after a dropped stream. */
  maxReconnects?: number;
}

const DEFAULT_MAX_RECONNECTS = 5;
const TERMINAL: ReadonlySet<TaskRunStatus> = new Set([
  TaskRunStatus.COMPLETED,
  TaskRunStatus.SUCCEEDED,
  TaskRunStatus.FAILED,
  TaskRunStatus.CANCELED,
]);
const SUCCESS: ReadonlySet<TaskRunStatus> = new Set([TaskRunStatus.COMPLETED, TaskRunStatus.SUCCEEDED]);

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** The JSON value held by a `*_json` bytes field (undefined when empty). */
export function decodeJson(bytes: Uint8Array): unknown {
  return bytes.length ? JSON.parse(fromUtf8.decode(bytes)) : undefined;
}

function jsonBytes(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

type Methods = typeof WorkflowsService.method;

/** A request ready to send, derived from one rpc's HTTP binding. */
interface Prepared {
  method: string;
  url: string;
  body: string | undefined;
}

/** Builds the HTTP request of `method` from its binding (pure; exported for tests). */
export function prepare(baseUrl: string, method: DescMethod, request: unknown): Prepared {
  const rule = getOption(method, httpOption);
  const base = getOption(method.parent, serviceHttp).basePath;
  const input = method.input;
  const wire = parseJson(toWireJson(input, request as never));
  const entries = wire.kind === "object" ? wire.entries : [];
  const byKey = new Map(entries);
  const used = new Set<string>();
  const path = rule.path.replace(/\{(\w+)(=\*\*)?\}/g, (_m, name: string, rest?: string) => {
    const key = wireKey(input, name);
    used.add(key);
    const v = byKey.get(key);
    const text = v?.kind === "string" ? v.value : "";
    if (!text) throw new RenderError(`${method.name}: ${name} is required`);
    return rest ? text.split("/").map(encodeURIComponent).join("/") : encodeURIComponent(text);
  });
  const query = new URLSearchParams();
  for (const name of rule.query) {
    const key = wireKey(input, name);
    used.add(key);
    const v = byKey.get(key);
    const add = (n: JsonNode): void => {
      if (n.kind === "string") query.append(key, n.value);
      else if (n.kind !== "null") query.append(key, writeJson(n));
    };
    if (v?.kind === "array") v.items.forEach(add);
    else if (v) add(v);
  }
  let body: string | undefined;
  if (rule.body === "*") {
    body = writeJson({ kind: "object", entries: entries.filter(([k]) => !used.has(k)) });
  }
  const qs = query.toString();
  return { method: rule.method, url: `${baseUrl.replace(/\/$/, "")}${base}${path}${qs ? `?${qs}` : ""}`, body };
}

/** The Workflows API: run, get, cancel, list, stream and await task runs. */
export class WorkflowsClient {
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly maxReconnects: number;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl;
    this.headers = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
    this.maxReconnects = options.maxReconnects ?? DEFAULT_MAX_RECONNECTS;
  }

  private async call<K extends keyof Methods>(
    name: K,
    request: Partial<MessageShape<Methods[K]["input"]>>,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    const method = WorkflowsService.method[name] as DescMethod;
    const req = create(method.input, request as never);
    const prepared = prepare(this.baseUrl, method, req);
    const response = await fetch(prepared.url, {
      method: prepared.method,
      headers: { ...this.headers, ...(prepared.body ? { "content-type": "application/json" } : {}) },
      body: prepared.body,
    });
    const text = await response.text();
    if (!response.ok) throw apiError(response.status, text);
    const rule = getOption(method, httpOption);
    const output = method.output as DescMessage;
    if (rule.noContent) return create(output) as never;
    let node = parseJson(text);
    if (rule.responseBody) node = { kind: "object", entries: [[wireKey(output, rule.responseBody), node]] };
    return fromWireJson(output, node) as never;
  }

  /** Starts `task` (a slug, name or id) with positional (array) or keyword (object) input. */
  async runTask(task: string, input: unknown[] | Record<string, unknown>, idempotencyKey?: string): Promise<TaskRun> {
    return this.call("runTask", { task, inputJson: jsonBytes(input), idempotencyKey });
  }

  /** One run with its input, results and error. */
  async getTaskRun(taskRunId: string): Promise<TaskRunDetails> {
    return this.call("getTaskRun", { taskRunId });
  }

  /** Cancels a run. */
  async cancelTaskRun(taskRunId: string): Promise<void> {
    await this.call("cancelTaskRun", { taskRunId });
  }

  /** Every run matching `filter`, newest first, following cursors page by page. */
  async *listTaskRuns(filter: Partial<ListTaskRunsRequest> = {}): AsyncGenerator<TaskRun> {
    let cursor = filter.cursor;
    for (;;) {
      const page = await this.call("listTaskRuns", { ...filter, cursor });
      for (const item of page.items) if (item.taskRun) yield item.taskRun;
      if (page.items.length === 0 || (filter.limit !== undefined && page.items.length < filter.limit)) return;
      const next = page.items[page.items.length - 1].cursor;
      if (!next || next === cursor) return;
      cursor = next;
    }
  }

  /**
   * The events of `taskRunIds` as they happen. A dropped connection is resumed with
   * Last-Event-ID (after the server's `retry:` delay), so no event is lost or repeated.
   * The stream ends when the caller stops iterating. `lastEventId` resumes after an
   * event seen earlier (for example by another process).
   */
  async *streamEvents(
    taskRunIds: string[],
    options: { signal?: AbortSignal; lastEventId?: string } = {},
  ): AsyncGenerator<TaskRunEvent> {
    const signal = options.signal;
    const method = WorkflowsService.method.streamTaskRunEvents as DescMethod;
    const prepared = prepare(this.baseUrl, method, create(method.input, { taskRunIds } as never));
    const parser = new SseParser();
    parser.lastEventId = options.lastEventId ?? "";
    let failures = 0;
    for (;;) {
      let response: Response;
      try {
        response = await fetch(prepared.url, {
          headers: {
            ...this.headers,
            accept: "text/event-stream",
            ...(parser.lastEventId ? { "last-event-id": parser.lastEventId } : {}),
          },
          signal,
        });
      } catch (err) {
        if (signal?.aborted || ++failures > this.maxReconnects) throw err;
        await sleep(parser.retryMs ?? 1000);
        continue;
      }
      if (!response.ok) throw apiError(response.status, await response.text());
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          for (const ev of parser.feed(decoder.decode(chunk, { stream: true }))) {
            failures = 0;
            yield create(TaskRunEventSchema, {
              event: ev.event,
              id: ev.id,
              data: fromWireJson(TaskRunDetailsSchema, ev.data),
            });
          }
        }
      } catch (err) {
        if (signal?.aborted) throw err;
      }
      if (++failures > this.maxReconnects) throw new RenderError("event stream dropped too often");
      await sleep(parser.retryMs ?? 1000);
    }
  }

  /** Waits for the run to end; returns it when it succeeded, else throws TaskRunError. */
  async awaitResult(taskRunId: string): Promise<TaskRunDetails> {
    const abort = new AbortController();
    try {
      for await (const ev of this.streamEvents([taskRunId], { signal: abort.signal })) {
        const run = ev.data;
        if (run && run.id === taskRunId && TERMINAL.has(run.status)) {
          if (!SUCCESS.has(run.status)) throw new TaskRunError(run);
          return run;
        }
      }
    } finally {
      abort.abort();
    }
    throw new RenderError("event stream ended");
  }
}

function apiError(status: number, text: string): ApiError {
  let message = text;
  try {
    const body = JSON.parse(text) as { message?: string };
    if (typeof body.message === "string") message = body.message;
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(status, message, text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
