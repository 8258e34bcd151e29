// The dashboard of the local task server: plain ES module, no dependencies.
// Every request goes to this page's own origin; data is rendered as text, never as HTML.

const PAGE = 50;
const SUBSCRIBE_WAIT_MS = 3000;
const TERMINAL = new Set(["completed", "succeeded", "failed", "canceled"]);
const state = { key: sessionStorage.getItem("rw-api-key") || "", tasks: [], info: null,
  runs: new Map(), lastEventId: null, listeners: new Set() };

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

// Resolved by the stream's first ready (or resync) event. A view drawn before the stream is
// subscribed could miss a transition that happens in between, so the first render waits.
let markSubscribed;
const subscribed = new Promise((resolve) => { markSubscribed = resolve; });

async function streamEvents() {
  // fetch rather than EventSource: it can send the API key and Last-Event-ID itself.
  for (;;) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (state.key) headers.Authorization = `Bearer ${state.key}`;
      if (state.lastEventId != null) headers["Last-Event-ID"] = state.lastEventId;
      const resp = await fetch("/v1/dashboard/events", { headers, credentials: "same-origin" });
      if (resp.status === 401) { askForKey(); setLive("API key needed"); return; }
      if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
      setLive("live");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          onFrame(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch { /* reconnect below */ }
    setLive("reconnecting…");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function onFrame(text) {
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
  if (id != null) state.lastEventId = id;
  if (event === "ready" || event === "resync") {
    const first = markSubscribed !== null;
    if (first) { markSubscribed(); markSubscribed = null; }
    // Redraw what was drawn without the stream: from the API, before this subscription.
    if (event === "resync" || (first && drawn)) render();
    return;
  }
  if (!data) return;
  const run = JSON.parse(data);
  if (!run.id) return;
  state.runs.set(run.id, run);
  for (const fn of state.listeners) fn(run);
}

// ------------------------------------------------------------------ helpers

// A view's listener is added once its GET has answered, so a transition the stream delivers
// while the GET is in flight only reaches state.runs. Reconcile: a terminal answer is final;
// otherwise the stream's copy is either newer, or older with the newer event still to come.
function latest(run) {
  const seen = state.runs.get(run.id);
  return !seen || TERMINAL.has(run.status) ? run : seen;
}

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

function matches(run) {
  if (filters.task && run.taskId !== filters.task) return false;
  if (filters.status && run.status !== filters.status) return false;
  if (filters.roots && run.parentTaskRunId) return false;
  if (filters.search && !run.id.includes(filters.search)) return false;
  return true;
}

async function runsView() {
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
  let page = 0, next = null;

  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursors[page]) q.set("cursor", cursors[page]);
    if (filters.task) q.set("taskSlug", taskName(filters.task));
    let items = await api(`/v1/task-runs?${q}`);
    next = items.length === PAGE ? items[items.length - 1].cursor : null;
    items = items.map((i) => latest(i.taskRun || i)).filter(matches);
    rows.clear();
    body.replaceChildren(...items.map((r) => { const tr = row(r); rows.set(r.id, tr); return tr; }));
    if (!items.length) body.append(h("tr", {}, h("td", { colspan: 5 }, "No runs match.")));
    pager.replaceChildren(
      h("button", { type: "button", disabled: page === 0, onclick: () => { page--; load(); } }, "Newer"),
      h("span", {}, `Page ${page + 1}`),
      h("button", { type: "button", disabled: !next, onclick: () => { cursors[page + 1] = next; page++; load(); } }, "Older"));
  }

  const onRun = (run) => {
    const old = rows.get(run.id);
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
  const statusSel = h("select", { id: "f-status", "aria-label": "Filter by status", onchange: (e) => { filters.status = e.target.value; reload(); } },
    ["", "pending", "running", "completed", "failed", "canceled"].map((s) =>
      h("option", { value: s, selected: filters.status === s }, s || "All statuses")));
  const roots = h("label", {}, h("input", { type: "checkbox", id: "f-roots", checked: filters.roots,
    onchange: (e) => { filters.roots = e.target.checked; reload(); } }), " Roots only");
  const search = h("input", { type: "search", id: "f-search", placeholder: "Search by run id", "aria-label": "Search by run id",
    value: filters.search, oninput: (e) => { filters.search = e.target.value.trim(); reload(); } });
  view(h("section", {}, h("h2", {}, "Runs"), h("div", { class: "filters" }, taskSel, statusSel, roots, search), table, pager));
  state.listeners.add(onRun);
  await load();
  return () => state.listeners.delete(onRun);
}

// ------------------------------------------------------------------ run view

async function runView(id) {
  let run = latest(await api(`/v1/task-runs/${encodeURIComponent(id)}`));
  const head = h("div");
  const detail = h("div", { class: "grid" });
  const treeBox = h("section", { class: "tree", "aria-label": "Run tree" });
  const logBox = h("pre", { id: "logs", "aria-label": "Logs", tabindex: 0 });
  const traceBox = h("pre", { id: "traceback", class: "error", tabindex: 0, "aria-label": "Traceback" });
  let tree = new Map();

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
    const items = await api(`/v1/task-runs?rootTaskRunId=${encodeURIComponent(run.rootTaskRunId || run.id)}&limit=100`);
    tree = new Map(items.map((i) => latest(i.taskRun || i)).map((r) => [r.id, r]));
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

  async function loadLogs() {
    const resp = await api(`/v1/logs?taskRunId=${encodeURIComponent(id)}&direction=forward&limit=1000`);
    logBox.replaceChildren(...resp.logs.map((l) => {
      const stream = (l.labels || []).map((x) => x.value).find((v) => v === "stdout" || v === "stderr") || "stdout";
      return h("span", { class: stream, "data-stream": stream }, l.message.endsWith("\n") ? l.message : `${l.message}\n`);
    }));
    if (!resp.logs.length) logBox.textContent = "(no output)";
    // The server puts a failed attempt's traceback on the run's stderr.
    const err = resp.logs.filter((l) => (l.labels || []).some((x) => x.value === "stderr")).map((l) => l.message).join("");
    const at = err.lastIndexOf("Traceback (most recent call last)");
    traceBox.textContent = at >= 0 ? err.slice(at) : "";
    traceBox.hidden = at < 0;
  }

  const onRun = (r) => {
    if (r.id === id) { run = r; drawHead(); loadLogs(); }
    if ((r.rootTaskRunId || r.id) === (run.rootTaskRunId || run.id)) { tree.set(r.id, r); drawTree(); }
  };
  // Output is not on the event stream; while the run is live (and for a moment after, as
  // the server writes output in batches) its logs refresh each second.
  let endedAt = TERMINAL.has(run.status) ? 0 : null;
  const timer = setInterval(() => {
    if (TERMINAL.has(run.status)) endedAt ??= Date.now();
    if (endedAt === null || Date.now() - endedAt < 2500) loadLogs();
  }, 1000);
  drawHead();
  view(h("div", {}, head, detail, treeBox, h("section", {}, h("h3", {}, "Logs"), logBox)));
  state.listeners.add(onRun);
  await Promise.all([loadTree(), loadLogs()]);
  return () => { state.listeners.delete(onRun); clearInterval(timer); };
}

// ------------------------------------------------------------------ tasks view

async function tasksView(params) {
  const info = await api("/v1/dashboard/info");
  state.tasks = info.tasks;
  showRegistration(info);
  const list = h("table", { "aria-label": "Tasks" },
    h("thead", {}, h("tr", {}, ["Task", "Retries", "Retry wait", "Backoff", "Timeout"].map((c) => h("th", {}, c)))),
    h("tbody", {}, info.tasks.map((t) => h("tr", {}, h("td", {}, t.name), h("td", {}, t.retry.maxRetries),
      h("td", {}, `${t.retry.waitDurationMs} ms`), h("td", {}, `×${t.retry.factor}`),
      h("td", {}, t.timeoutSeconds ? `${t.timeoutSeconds} s` : "default")))));
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
    try {
      const run = await api("/v1/task-runs", { method: "POST", body: { task: sel.value, input: value } });
      location.hash = `#/runs/${encodeURIComponent(run.id)}`;
    } catch (e) { message.className = "error"; message.textContent = e.message; }
  } }, h("h3", {}, "Start a run"), h("div", { class: "filters" }, sel, input, h("button", { type: "submit" }, "Start")), message);
  view(h("section", {}, h("h2", {}, "Tasks"), list, form));
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
async function render() {
  drawn = true;
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
  try {
    const info = await api("/v1/dashboard/info");
    state.tasks = info.tasks;
    showRegistration(info);
  } catch (e) {
    if (e.status !== 401) view(h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  if (!started) {
    started = true;
    window.addEventListener("hashchange", render);
    streamEvents();
    // Bounded, so a stream that cannot connect still leaves a page drawn from the API.
    await Promise.race([subscribed, new Promise((r) => setTimeout(r, SUBSCRIBE_WAIT_MS))]);
  }
  await render();
}

start();
