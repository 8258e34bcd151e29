import assert from "node:assert/strict";
import { test } from "node:test";
import { SseParser } from "../src/sse.js";

test("events, ids, retry and comments, split at any byte", () => {
  const text = "retry: 250\n\n: ping\n\nid: 7\nevent: task.running\ndata: {\"a\":\ndata: 1}\n\r\nid: 8\r\ndata:x\r\n\r\n";
  for (let cut = 0; cut <= text.length; cut++) {
    const p = new SseParser();
    const events = [...p.feed(text.slice(0, cut)), ...p.feed(text.slice(cut))];
    assert.deepEqual(events, [
      { event: "task.running", data: '{"a":\n1}', id: "7" },
      { event: "message", data: "x", id: "8" },
    ]);
    assert.equal(p.retryMs, 250);
    assert.equal(p.lastEventId, "8");
  }
});

test("an event without data is not dispatched and an unfinished one waits", () => {
  const p = new SseParser();
  assert.deepEqual(p.feed("event: x\n\nid: 3\n\ndata: half"), []);
  assert.equal(p.lastEventId, "3");
  assert.deepEqual(p.feed("\n\n"), [{ event: "message", data: "half", id: "3" }]);
});
