// The dashboard of the local task server: plain ES module, no dependencies.
// Every request goes to this page's own origin; data is rendered as text, never as HTML.

const PAGE = 50;
const SUBSCRIBE_WAIT_MS = 3000;
const TERMINAL = new Set(["completed", "succeeded", "failed", "canceled"]);
const state = { key: sessionStorage.getItem("rw-api-key") || "", tasks: [], listeners: new Set() };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401) askForKey();
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try { message = (await resp.json()).message || message; } catch { /* not JSON */ }
    throw new ApiError(resp.status, message);
  }
  return resp.status === 204 ? null : resp.json();
}

function askForKey() {
  const form = document.getElementById("key-form");
  form.hidden = false;
  document.getElementById("api-key").focus();
}

document.getElementById("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.key = document.getElementById("api-key").value;
  sessionStorage.setItem("rw-api-key", state.key);
  ev.target.hidden = true;
  start();
});

// ------------------------------------------------------------------ live events

function setLive(text) { document.getElementById("live").textContent = text; }

function parseFrame(text) {
  let id = null, event = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data += value;
  }
  return { id, event, data };
}

// An SSE stream of this origin, resumed with Last-Event-ID after a drop, until `signal`
// aborts it. fetch rather than EventSource: it can send the API key itself.
async function sse(path, { onFrame, onOpen = () => {}, onDrop = () => {}, signal }) {
  let lastId = null;
  while (!signal?.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (state.key) headers.Authorization = `Bearer ${state.key}`;
      if (lastId != null) headers["Last-Event-ID"] = lastId;
      const resp = await fetch(path, { headers, credentials: "same-origin", signal });
      if (resp.status === 401) { askForKey(); return false; }
      if (!resp.ok || !resp.body) throw new Error(`${path}: ${resp.status}`);
      onOpen();
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
          if (frame.id != null) lastId = frame.id;
          onFrame(frame);
        }
      }
    } catch { /* aborted, or reconnect below */ }
    if (signal?.aborted) break;
    onDrop();
    await new Promise((r) => setTimeout(r, 1000));
  }
  return true;
}

// Resolved with the all-runs stream's first ready (or resync) id. A view drawn from data
// read before the subscription could miss a transition in between, so the first render
// checks its data's eventId against it.
let markSubscribed;
const subscribed = new Promise((resolve) => { markSubscribed = resolve; });
// Bounded, so a stream that cannot connect still leaves a page drawn from the API.
const subscribedId = Promise.race([subscribed,
  new Promise((r) => setTimeout(() => r(0), SUBSCRIBE_WAIT_MS))]);

async function streamEvents() {
  const ok = await sse("/v1/dashboard/events", {
    onOpen: () => setLive("live"), onDrop: () => setLive("reconnecting…"), onFrame: onRunFrame });
  if (!ok) setLive("API key needed");
}

function onRunFrame({ id, event, data }) {
  if (event === "ready" || event === "resync") {
    const first = markSubscribed !== null;
    if (first) { markSubscribed(Number(id)); markSubscribed = null; }
    // What is drawn may predate a gap in the stream: redraw it from the API (unless the
    // view checks its data against this id itself).
    if (event === "resync" || (first && drawn && !checksReady)) render();
    return;
  }
  if (!data) return;
  const run = JSON.parse(data);
  if (!run.id) return;
  for (const fn of state.listeners) fn(run, Number(id));
}

// ------------------------------------------------------------------ helpers

const taskName = (taskId) => state.tasks.find((t) => t.id === taskId)?.name || taskId;
const statusEl = (s) => h("span", { class: `status status-${s}`, "data-status": s }, s);
const fmtTime = (t) => (t ? new Date(t).toLocaleTimeString() : "—");
function duration(run) {
  if (!run.startedAt) return "—";
  const end = run.completedAt ? Date.parse(run.completedAt) : Date.now();
  return `${((end - Date.parse(run.startedAt)) / 1000).toFixed(2)} s`;
}
const pretty = (v) => JSON.stringify(v, null, 2);
const runLink = (id) => h("a", { href: `#/runs/${encodeURIComponent(id)}` }, id);

function view(content) {
  const main = document.getElementById("main");
  main.replaceChildren(content);
}

// ------------------------------------------------------------------ runs view

const filters = { task: "", status: "", roots: false, search: "" };

// The same filters as the server applies (for runs that arrive on the stream).
function matches(run) {
  if (filters.search) return run.id === filters.search;
  if (filters.task && run.taskId !== filters.task) return false;
  if (filters.status && run.status !== filters.status) return false;
  if (filters.roots && run.parentTaskRunId) return false;
  return true;
}

function runsQuery(cursor) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) q.set("cursor", cursor);
  if (filters.task) q.set("taskSlug", filters.task);
  if (filters.status) q.set("status", filters.status);
  if (filters.roots) q.set("rootsOnly", "true");
  return `/v1/dashboard/runs?${q}`;
}

// The first page, requested at start-up alongside the stream's subscription.
let prefetched = null;

async function runsPage(cursor) {
  // Run ids are opaque: a search is a lookup of one id.
  if (filters.search) return api(`/v1/dashboard/runs?${new URLSearchParams({ runId: filters.search })}`);
  const pre = cursor ? null : prefetched;
  prefetched = null;
  const got = pre ? await pre.catch(() => null) : null;
  if (got) return got;
  return api(runsQuery(cursor));
}

async function runsView() {
  checksReady = true; // each load below checks its eventId against the stream's ready
  const cursors = [null];
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const table = h("table", { "aria-label": "Task runs" },
    h("thead", {}, h("tr", {}, ["Run", "Task", "Status", "Started", "Duration"].map((c) => h("th", {}, c)))),
    body);
  const rows = new Map();
  const row = (run) => h("tr", { "data-run": run.id }, h("td", {}, runLink(run.id)),
    h("td", {}, taskName(run.taskId)), h("td", {}, statusEl(run.status)),
    h("td", {}, fmtTime(run.startedAt)), h("td", {}, duration(run)));
  let page = 0, next = null, seenId = 0, during = null, alive = true;

  async function load() {
    // Events that arrive while the page is read are replayed on it once drawn (those
    // it already reflects are skipped by their id).
    const mine = during = [];
    const got = await runsPage(cursors[page]);
    if (during !== mine) return; // a newer load took over
    during = null;
    // A page read before the stream's subscription (the first one is read alongside it)
    // is drawn at once; if a transition came between the read and the subscription
    // (eventId < ready's id), the stream does not carry it: read again.
    subscribed.then((readyId) => { if (alive && seenId < readyId) load(); });
    next = got.nextCursor;
    seenId = got.eventId;
    const items = got.runs;
    rows.clear();
    body.replaceChildren(...items.map((r) => { const tr = row(r); rows.set(r.id, tr); return tr; }));
    if (!items.length) body.append(h("tr", {}, h("td", { colspan: 5 }, "No runs match.")));
    pager.replaceChildren(
      h("button", { type: "button", disabled: page === 0, onclick: () => { page--; load(); } }, "Newer"),
      h("span", {}, `Page ${page + 1}`),
      h("button", { type: "button", disabled: !next, onclick: () => { cursors[page + 1] = next; page++; load(); } }, "Older"));
    for (const [run, eventId] of mine) onRun(run, eventId);
  }

  const onRun = (run, eventId) => {
    if (during) { during.push([run, eventId]); return; }
    if (eventId <= seenId) return; // the page already shows this transition (or a later one)
    const old = rows.get(run.id);
    if (old && !matches(run)) { old.remove(); rows.delete(run.id); return; }
    if (old) { const tr = row(run); old.replaceWith(tr); rows.set(run.id, tr); return; }
    if (page === 0 && matches(run)) {
      const tr = row(run); rows.set(run.id, tr);
      if (body.firstChild && !body.firstChild.dataset.run) body.replaceChildren();
      body.prepend(tr);
    }
  };

  const reload = () => { page = 0; cursors.length = 1; load(); };
  const taskSel = h("select", { id: "f-task", "aria-label": "Filter by task", onchange: (e) => { filters.task = e.target.value; reload(); } },
    h("option", { value: "" }, "All tasks"),
    state.tasks.map((t) => h("option", { value: t.id, selected: filters.task === t.id }, t.name)));
  // The server takes the task's id as a slug; the stream's runs carry it as taskId.
  const statusSel = h("select", { id: "f-status", "aria-label": "Filter by status", onchange: (e) => { filters.status = e.target.value; reload(); } },
    ["", "pending", "running", "completed", "failed", "canceled"].map((s) =>
      h("option", { value: s, selected: filters.status === s }, s || "All statuses")));
  const roots = h("label", {}, h("input", { type: "checkbox", id: "f-roots", checked: filters.roots,
    onchange: (e) => { filters.roots = e.target.checked; reload(); } }), " Roots only");
  const search = h("input", { type: "search", id: "f-search", placeholder: "Search by run id", "aria-label": "Search by run id",
    value: filters.search, onchange: (e) => { filters.search = e.target.value.trim(); reload(); } });
  view(h("section", {}, h("h2", {}, "Runs"), h("div", { class: "filters" }, taskSel, statusSel, roots, search), table, pager));
  state.listeners.add(onRun);
  await load();
  return () => { alive = false; state.listeners.delete(onRun); };
}

// ------------------------------------------------------------------ run view

async function runView(id) {
  // Listening before the run is read: what changes meanwhile is applied after it.
  const early = [];
  const collect = (r, eventId) => early.push([r, eventId]);
  state.listeners.add(collect);
  let run;
  try { run = await api(`/v1/task-runs/${encodeURIComponent(id)}`); }
  finally { state.listeners.delete(collect); }
  const head = h("div");
  const detail = h("div", { class: "grid" });
  const treeBox = h("section", { class: "tree", "aria-label": "Run tree" });
  const logBox = h("pre", { id: "logs", "aria-label": "Logs", tabindex: 0 });
  const traceBox = h("pre", { id: "traceback", class: "error", tabindex: 0, "aria-label": "Traceback" });
  traceBox.hidden = true;
  let tree = new Map();
  const treeEvents = new Map(); // run id -> id of the last event applied to the tree

  function drawHead() {
    const cancel = h("button", { type: "button", id: "cancel", disabled: TERMINAL.has(run.status),
      onclick: async () => {
        try { await api(`/v1/task-runs/${encodeURIComponent(id)}`, { method: "DELETE" }); }
        catch (e) { alert(e.message); }
      } }, "Cancel");
    const again = h("button", { type: "button", id: "run-again",
      onclick: () => { location.hash = `#/tasks?task=${encodeURIComponent(taskName(run.taskId))}&input=${encodeURIComponent(JSON.stringify(run.input ?? []))}`; } },
      "Run again…");
    head.replaceChildren(...[h("h2", {}, `${taskName(run.taskId)} · `, statusEl(run.status)),
      h("p", {}, `Run ${run.id} · started ${fmtTime(run.startedAt)} · finished ${fmtTime(run.completedAt)} · ${duration(run)}`),
      run.parentTaskRunId ? h("p", {}, "Parent: ", runLink(run.parentTaskRunId)) : null,
      h("div", { class: "filters" }, cancel, again)].filter(Boolean));
    const attempts = (run.attempts || []).map((a) => h("li", {}, `#${a.attempt + 1} `, statusEl(a.status),
      ` ${fmtTime(a.startedAt)} → ${fmtTime(a.completedAt)}`, a.error ? h("pre", { class: "error" }, a.error) : null));
    detail.replaceChildren(...[
      h("section", {}, h("h3", {}, "Input"), h("pre", { id: "input", tabindex: 0 }, pretty(run.input ?? null))),
      h("section", {}, h("h3", {}, "Result"), h("pre", { id: "result", tabindex: 0 }, pretty(run.results ?? null))),
      run.error ? h("section", {}, h("h3", {}, "Error"), h("pre", { id: "error", class: "error", tabindex: 0 }, run.error), traceBox) : null,
      h("section", {}, h("h3", {}, "Attempts"), h("ol", { class: "timeline" }, attempts))].filter(Boolean));
  }

  async function loadTree() {
    const got = await api(`/v1/dashboard/runs?rootTaskRunId=${encodeURIComponent(run.rootTaskRunId || run.id)}&limit=100`);
    // A node changed by an event newer than the list keeps the event's state.
    for (const r of got.runs) if (!((treeEvents.get(r.id) ?? 0) > got.eventId)) tree.set(r.id, r);
    drawTree();
  }

  function drawTree() {
    const kids = new Map();
    for (const r of tree.values()) {
      const p = r.parentTaskRunId || "";
      if (!kids.has(p)) kids.set(p, []);
      kids.get(p).push(r);
    }
    const node = (r) => h("li", { class: r.id === id ? "current" : "", "data-run": r.id },
      h("a", { href: `#/runs/${encodeURIComponent(r.id)}` }, taskName(r.taskId)), " ", statusEl(r.status),
      (kids.get(r.id) || []).length ? h("ul", {}, kids.get(r.id).map(node)) : null);
    const roots = [...tree.values()].filter((r) => !r.parentTaskRunId || !tree.has(r.parentTaskRunId));
    treeBox.replaceChildren(h("h3", {}, "Tree"), h("ul", {}, roots.map(node)));
  }

  let stderr = "";
  logBox.textContent = "(no output yet)";
  function onLogs({ event, data }) {
    if (event !== "logs" || !data) return;
    if (!logBox.querySelector("span")) logBox.replaceChildren();
    for (const l of JSON.parse(data)) {
      const stream = l.stream === "stderr" ? "stderr" : "stdout";
      logBox.append(h("span", { class: stream, "data-stream": stream }, l.message.endsWith("\n") ? l.message : `${l.message}\n`));
      if (stream === "stderr") stderr += l.message;
    }
    // The server puts a failed attempt's traceback on the run's stderr.
    const at = stderr.lastIndexOf("Traceback (most recent call last)");
    traceBox.textContent = at >= 0 ? stderr.slice(at) : "";
    traceBox.hidden = at < 0;
  }

  const onRun = (r, eventId) => {
    if (r.id === id) { run = r; drawHead(); }
    if ((r.rootTaskRunId || r.id) === (run.rootTaskRunId || run.id)) {
      tree.set(r.id, r); treeEvents.set(r.id, eventId); drawTree();
    }
  };
  tree.set(run.id, run);
  drawHead();
  view(h("div", {}, head, detail, treeBox, h("section", {}, h("h3", {}, "Logs"), logBox)));
  state.listeners.add(onRun);
  for (const [r, eventId] of early) onRun(r, eventId);
  // Output arrives on its own stream, as the server commits it, for as long as this shows.
  const logs = new AbortController();
  sse(`/v1/dashboard/logs?taskRunId=${encodeURIComponent(id)}`, { onFrame: onLogs, signal: logs.signal });
  await loadTree();
  return () => { state.listeners.delete(onRun); logs.abort(); };
}

// ------------------------------------------------------------------ tasks view

async function tasksView(params) {
  const info = await api("/v1/dashboard/info");
  state.tasks = info.tasks;
  showRegistration(info);
  const list = h("table", { "aria-label": "Tasks" },
    h("thead", {}, h("tr", {}, ["Task", "Parameters", "Retries", "Retry wait", "Backoff", "Timeout", "Plan"].map((c) => h("th", {}, c)))),
    h("tbody", {}, info.tasks.map((t) => h("tr", { "data-task": t.name }, h("td", {}, t.name),
      h("td", { class: "params" }, t.parameters.length ? t.parameters.map(paramEl) : "(none)"),
      h("td", {}, t.retry.maxRetries),
      h("td", {}, `${t.retry.waitDurationMs} ms`), h("td", {}, `×${t.retry.factor}`),
      h("td", {}, t.timeoutSeconds ? `${t.timeoutSeconds} s` : "default"), h("td", {}, t.plan || "default")))));
  const sel = h("select", { id: "start-task", "aria-label": "Task to start" },
    info.tasks.map((t) => h("option", { value: t.name, selected: params.get("task") === t.name }, t.name)));
  const input = h("textarea", { id: "start-input", rows: 4, cols: 40, "aria-label": "Input (JSON array or object)",
    "aria-describedby": "start-message" }, params.get("input") || "[]");
  const message = h("p", { id: "start-message", role: "alert" });
  const form = h("form", { id: "start-form", onsubmit: async (ev) => {
    ev.preventDefault();
    let value;
    try { value = JSON.parse(input.value); } catch (e) {
      message.className = "error"; message.textContent = `Input is not valid JSON: ${e.message}`; return;
    }
    if (typeof value !== "object" || value === null) {
      message.className = "error"; message.textContent = "Input must be a JSON array (positional) or object (keyword arguments)."; return;
    }
    const task = info.tasks.find((t) => t.name === sel.value);
    const problem = task ? checkInput(task, value) : null;
    if (problem) { message.className = "error"; message.textContent = problem; return; }
    try {
      const run = await api("/v1/task-runs", { method: "POST", body: { task: sel.value, input: value } });
      location.hash = `#/runs/${encodeURIComponent(run.id)}`;
    } catch (e) { message.className = "error"; message.textContent = e.message; }
  } }, h("h3", {}, "Start a run"), h("div", { class: "filters" }, sel, input, h("button", { type: "submit" }, "Start")), message);
  view(h("section", {}, h("h2", {}, "Tasks"), list, form));
}

const PREFIX = { var_positional: "*", var_keyword: "**" };

function paramEl(p) {
  const text = `${PREFIX[p.kind] || ""}${p.name}${p.type ? `: ${p.type}` : ""}${p.hasDefault ? ` = ${p.default ?? "None"}` : ""}`;
  return h("code", { class: "param", "data-param": p.name, title: p.kind.replaceAll("_", " ") }, text);
}

// Whether `value` (a JSON array or object) fits the task's parameters: a message when not.
function checkInput(task, value) {
  const params = task.parameters;
  if (!params.length) return null; // described nothing (or takes nothing): the run will tell
  const signature = `${task.name}(${params.map((p) => `${PREFIX[p.kind] || ""}${p.name}`).join(", ")})`;
  const varPos = params.some((p) => p.kind === "var_positional");
  const varKw = params.some((p) => p.kind === "var_keyword");
  const required = params.filter((p) => !p.hasDefault && !PREFIX[p.kind]);
  if (Array.isArray(value)) {
    const positional = params.filter((p) => p.kind === "positional_only" || p.kind === "positional_or_keyword");
    if (!varPos && value.length > positional.length) {
      return `${signature} takes at most ${positional.length} positional argument${positional.length === 1 ? "" : "s"}, the input has ${value.length}.`;
    }
    const missing = required.filter((p) => p.kind === "keyword_only" || positional.indexOf(p) >= value.length);
    if (missing.length) return `${signature}: missing required argument${missing.length === 1 ? "" : "s"} ${missing.map((p) => p.name).join(", ")}${missing.some((p) => p.kind === "keyword_only") ? " (keyword-only: give the input as an object)" : ""}.`;
    return null;
  }
  const byName = new Map(params.filter((p) => !PREFIX[p.kind] && p.kind !== "positional_only").map((p) => [p.name, p]));
  const unknown = Object.keys(value).filter((k) => !byName.has(k));
  if (unknown.length && !varKw) return `${signature}: unknown parameter${unknown.length === 1 ? "" : "s"} ${unknown.join(", ")}.`;
  const missing = required.filter((p) => !(p.name in value) || p.kind === "positional_only");
  if (missing.length) return `${signature}: missing required parameter${missing.length === 1 ? "" : "s"} ${missing.map((p) => p.name).join(", ")}${missing.some((p) => p.kind === "positional_only") ? " (positional-only: give the input as an array)" : ""}.`;
  return null;
}

function showRegistration(info) {
  const el = document.getElementById("registration-error");
  el.hidden = !info.registrationError;
  const serving = {
    "last-good": "Still serving the last good version" + (info.registeredAt ? ` (registered ${info.registeredAt})` : "") + ": runs use it until the app registers again.",
    "broken": "Runs start the current source and fail the same way until it is fixed.",
  }[info.serving] || "";
  el.textContent = info.registrationError ? `Task registration failed: ${info.registrationError}${serving ? ` \u2014 ${serving}` : ""}` : "";
  if (info.registrationError && info.registrationOutput) el.append(h("pre", {}, info.registrationOutput));
}

// ------------------------------------------------------------------ routing

let cleanup = null;
let drawn = false;
let checksReady = false;
async function render() {
  drawn = true;
  checksReady = false;
  if (cleanup) { cleanup(); cleanup = null; }
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  const name = path.startsWith("/tasks") ? "tasks" : "runs";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  try {
    const m = path.match(/^\/runs\/(.+)$/);
    cleanup = (m ? await runView(decodeURIComponent(m[1])) : name === "tasks" ? await tasksView(params) : await runsView()) || null;
  } catch (e) {
    view(h("p", { class: "error", role: "alert" }, e.message));
  }
}

let started = false;
async function start() {
  // The info, the stream's subscription and the runs view's first page are asked for at
  // once; the page is drawn when it comes and read again if it predates the subscription
  // (runsView's load checks its eventId against the stream's ready id).
  const info = api("/v1/dashboard/info");
  if (!started && !location.hash.slice(1).startsWith("/runs/") && !location.hash.startsWith("#/tasks")) {
    prefetched = api(runsQuery(null));
    prefetched.catch(() => {});
  }
  if (!started) streamEvents();
  try {
    const got = await info;
    state.tasks = got.tasks;
    showRegistration(got);
  } catch (e) {
    if (e.status !== 401) view(h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  if (!started) {
    started = true;
    window.addEventListener("hashchange", render);
    // A run or the tasks view is read after the subscription; the runs view's first page
    // was read alongside it and is checked against it (runsView).
    if (!prefetched) await subscribedId;
  }
  await render();
}

start();
