// End to end: the real local server (render-workflows dev) on examples/tasks.py, driven
// from TypeScript over loopback HTTP and SSE.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ApiError, TaskRunError, TaskRunStatus, WorkflowsClient, decodeJson } from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..", "..");
const TS_DIR = join(ROOT, "clients", "typescript");
const RUNNER = join(ROOT, ".venv", "bin", "render-workflows");
const STARTUP_MS = 60_000;

let server: ChildProcess;
let state: string;
let client: WorkflowsClient;

before(async () => {
  assert.ok(existsSync(RUNNER), `${RUNNER} is missing: run python3 build_tools/dev.py setup`);
  state = mkdtempSync(join(tmpdir(), "render-sdk-ts-"));
  server = spawn(
    RUNNER,
    ["dev", "--port", "0", "--state-dir", state, "--no-reload", "long_tasks:app"],
    { cwd: join(TS_DIR, "test"), stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`server did not listen:\n${output}`)), STARTUP_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const m = /^Listening on (http:\/\/\S+)$/m.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    server.stdout!.on("data", onData);
    server.stderr!.on("data", onData);
    server.on("exit", (code) => reject(new Error(`server exited (${code}):\n${output}`)));
  });
  client = new WorkflowsClient({ baseUrl: url });
});

after(async () => {
  if (server.exitCode === null) {
    const gone = new Promise((resolve) => server.on("exit", resolve));
    server.kill("SIGTERM");
    await gone;
  }
  rmSync(state, { recursive: true, force: true });
});

test("add_squares(3, 4): run, stream its events, get 25", async () => {
  const run = await client.runTask("add_squares", [3, 4]);
  assert.ok(run.id);
  const seen: string[] = [];
  let last;
  for await (const ev of client.streamEvents([run.id])) {
    seen.push(ev.event);
    last = ev.data!;
    if (last.id === run.id && last.status === TaskRunStatus.COMPLETED) break;
  }
  assert.equal(seen.at(-1), "task.completed");
  assert.deepEqual(decodeJson(last!.resultsJson), [25]);
  const done = await client.awaitResult(run.id);
  assert.deepEqual(decodeJson(done.resultsJson), [25]);
  assert.deepEqual(decodeJson(done.inputJson), [3, 4]);
  const got = await client.getTaskRun(run.id);
  assert.equal(got.status, TaskRunStatus.COMPLETED);
  assert.deepEqual(decodeJson(got.resultsJson), [25]);
});

test("Last-Event-ID resumes after a seen event: the rest arrive, none repeated", async () => {
  const runs: string[] = [];
  for (const n of [5, 6, 7]) runs.push((await client.runTask("nap", [0.2 * n])).id);
  const collect = async (count: number, lastEventId?: string): Promise<string[]> => {
    const seen: string[] = [];
    const signal = AbortSignal.timeout(30_000);
    for await (const ev of client.streamEvents(runs, { lastEventId, signal })) {
      seen.push(`${ev.id} ${ev.event} ${ev.data?.id}`);
      if (seen.length === count) break;
    }
    return seen;
  };
  const all = await collect(3);
  assert.deepEqual(all.map((e) => e.split(" ")[1]), Array(3).fill("task.completed"));
  assert.deepEqual(new Set(all.map((e) => e.split(" ")[2])), new Set(runs));
  assert.deepEqual(await collect(2, all[0].split(" ")[0]), all.slice(1));
});

test("cancel a long run: it ends canceled and awaiting it throws", async () => {
  const run = await client.runTask("nap", [60]);
  await client.cancelTaskRun(run.id);
  await assert.rejects(client.awaitResult(run.id), (err: unknown) => {
    assert.ok(err instanceof TaskRunError);
    assert.equal(err.run.status, TaskRunStatus.CANCELED);
    return true;
  });
  assert.equal((await client.getTaskRun(run.id)).status, TaskRunStatus.CANCELED);
});

test("list with cursors pages through every run, newest first, without repeats", async () => {
  for (let i = 0; i < 3; i++) await client.awaitResult((await client.runTask("square", [i])).id);
  const all = [];
  for await (const r of client.listTaskRuns({ limit: 2 })) all.push(r.id);
  assert.ok(all.length >= 5, `only ${all.length} runs`);
  assert.equal(new Set(all).size, all.length);
  const firstPage = [];
  for await (const r of client.listTaskRuns({ limit: 100 })) firstPage.push(r.id);
  assert.deepEqual(all, firstPage);
});

test("bad input gets a clear error", async () => {
  await assert.rejects(client.getTaskRun("trn-does-not-exist"), (err: unknown) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 404);
    return true;
  });
  await assert.rejects(client.runTask("no_such_task", []), ApiError);
});
