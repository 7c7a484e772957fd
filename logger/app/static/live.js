// gestor live page: counters, graphs and the latest decisions, kept current
// by the Server-Sent Events stream at /events. No external resources.
"use strict";

const MAX_ROWS = 300;
const GRAPH_REFRESH_MS = 15000;
const GRAPH_DEBOUNCE_MS = 2000;
const seen = new Set();
const rowsEl = document.getElementById("rows");
const rangeEl = document.getElementById("range");
const hostEl = document.getElementById("host");
const RANGE_SECONDS = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
let graphTimer = null;
// Requests in flight per kind ("hosts", "stats", "recent", "graph-cpu"...):
// "running", or "again" when another was asked for meanwhile.
const inFlight = new Map();
// Batches the stream has brought so far; a row remembers which one brought it.
let streamSeq = 0;

// Runs `run` (async) unless a request of this kind is still in flight; then
// it runs once more after that one ends (reading the page's state as it is
// by then), however many times it was asked for meanwhile. So a slow server
// never sees a pile of identical requests from one page.
async function once(kind, run) {
  if (inFlight.has(kind)) {
    inFlight.set(kind, "again");
    return;
  }
  inFlight.set(kind, "running");
  try {
    await run();
  } catch (e) {
    // A failed fetch (server gone, reconnecting): the next refresh retries.
  } finally {
    const again = inFlight.get(kind) === "again";
    inFlight.delete(kind);
    if (again) once(kind, run);
  }
}

function text(id, value) {
  const el = document.getElementById(id);
  if (el) el.textContent = value;
}

function fmt(n, digits) {
  return n === null || n === undefined ? "" : Number(n).toFixed(digits);
}

function setLive(state, label) {
  document.body.dataset.live = state;
  text("status", label);
}

function showCounters(c) {
  if (!c) return;
  const ev = c.by_event || {};
  text("c-total", c.total);
  for (const name of ["cycle", "kill", "kill_failed", "error"]) text("c-" + name, ev[name] || 0);
  const kt = c.kills_by_type || {};
  text("c-kill-types", Object.keys(kt).sort().map((k) => k + " " + kt[k]).join(" · "));
  const last = c.last_cycle;
  if (last) {
    text("c-last", "#" + last.cycle + " " + String(last.time).replace("T", " ").replace("Z", ""));
    const d = last.details || {};
    const parts = [];
    if (d.containers !== undefined) parts.push(d.containers + " containers");
    if (typeof d.host_cpu_ratio === "number") parts.push("CPU " + fmt(d.host_cpu_ratio * 100, 0) + "%");
    if (typeof d.host_memory_ratio === "number") parts.push("mem " + fmt(d.host_memory_ratio * 100, 0) + "%");
    text("c-last-details", parts.join(" · "));
  }
  showAlerts(c.alerts_firing);
}

// Alerts firing now (the newest notification of each alert says firing).
function showAlerts(firing) {
  const list = document.getElementById("c-alerts-list");
  if (!list || !Array.isArray(firing)) return;
  text("c-alerts", firing.length);
  document.getElementById("c-alerts-card").classList.toggle("on", firing.length > 0);
  list.textContent = "";
  for (const a of firing) {
    const li = document.createElement("li");
    li.className = "sev-" + (a.severity || "none");
    li.textContent = a.name + (a.host ? " @ " + a.host : "") + (a.severity ? " (" + a.severity + ")" : "") +
      " since " + String(a.since || "").replace("T", " ").replace("Z", "");
    if (a.summary) li.title = a.summary;
    list.appendChild(li);
  }
}

function enabledEvents() {
  const on = new Set();
  for (const box of document.querySelectorAll("#filters input")) if (box.checked) on.add(box.value);
  return on;
}

// A row is shown when its event is ticked and it is of the chosen host (or
// all hosts are chosen).
function shown(tr) {
  return enabledEvents().has(tr.dataset.event) && (!hostEl.value || tr.dataset.host === hostEl.value);
}

function refilter() {
  for (const tr of rowsEl.rows) tr.classList.toggle("hidden", !shown(tr));
}

// Per-host totals over the chosen range (GET /logs/hosts), and the host
// selector's choices (every host seen in that range, the chosen one kept).
function loadHosts() {
  return once("hosts", fetchHosts);
}

async function fetchHosts() {
  const seconds = RANGE_SECONDS[rangeEl.value];
  const query = seconds ? "?since=" + Math.floor(Date.now() / 1000 - seconds) : "";
  const response = await fetch("/logs/hosts" + query);
  if (!response.ok) return;
  const page = await response.json();
  const body = document.getElementById("hosts");
  body.textContent = "";
  const names = new Set();
  for (const h of page.hosts) {
    names.add(h.host);
    const tr = document.createElement("tr");
    if (hostEl.value === h.host) tr.className = "chosen";
    const cells = [[h.host, ""], [h.records, "num"], [h.cycles, "num"], [h.kills, "num"],
      [h.kill_failures, "num"], [h.errors, "num"],
      [String(h.last_time || "").replace("T", " ").replace("Z", ""), ""]];
    for (const [value, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = value;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  text("hosts-window", seconds ? "(last " + rangeEl.value + ")" : "(all records)");
  if (hostEl.value) names.add(hostEl.value);
  const have = new Set([...hostEl.options].map((o) => o.value));
  for (const name of [...names].sort()) {
    if (have.has(name)) continue;
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    hostEl.appendChild(option);
  }
}

function makeRow(r, fresh) {
  const tr = document.createElement("tr");
  tr.dataset.id = r.id;
  tr.dataset.event = r.event;
  tr.dataset.host = r.host || "";
  if (fresh) tr.dataset.seq = String(streamSeq);
  tr.className = "ev-" + r.event + (fresh ? " fresh" : "");
  if (!shown(tr)) tr.classList.add("hidden");
  const alert = r.event === "alert" ? (r.alert || {}) : null;
  if (alert) tr.classList.add("alert-" + (alert.status === "resolved" ? "resolved" : "firing"));
  const cells = alert ? [
    [String(r.time || "").replace("T", " ").replace("Z", ""), ""],
    ["alert " + (alert.status || ""), "event"],
    [alert.severity || "", ""],
    [(alert.name || "") + (r.host ? " @ " + r.host : ""), ""],
    ["", "num"],
    ["", "num"],
    [r.reason || "", "reason"],
  ] : [
    [String(r.time || "").replace("T", " ").replace("Z", ""), ""],
    [r.event, "event"],
    [r.container_type || "", ""],
    [r.container_name || (r.container_id ? r.container_id.slice(0, 12) : ""), ""],
    [r.cpu_ratio === null || r.cpu_ratio === undefined ? "" : fmt(r.cpu_ratio * 100, 1), "num"],
    [r.memory_bytes === null || r.memory_bytes === undefined ? "" : fmt(r.memory_bytes / 1048576, 1), "num"],
    [r.reason || "", "reason"],
  ];
  for (const [value, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  return tr;
}

// records: newest first.
function addRecords(records, fresh) {
  const frag = document.createDocumentFragment();
  for (const r of records) {
    if (!r || seen.has(r.id)) continue;
    seen.add(r.id);
    frag.appendChild(makeRow(r, fresh));
  }
  rowsEl.insertBefore(frag, rowsEl.firstChild);
  while (rowsEl.rows.length > MAX_ROWS) {
    const last = rowsEl.rows[rowsEl.rows.length - 1];
    seen.delete(last.dataset.id);
    last.remove();
  }
}

function loadRecent() {
  return once("recent", fetchRecent);
}

async function fetchRecent() {
  const since = streamSeq;
  const response = await fetch("/logs?limit=" + MAX_ROWS);
  if (!response.ok) return;
  const page = await response.json();
  // Rows the stream brought while the list was loading may be newer than
  // it: they stay, on top, rather than vanish with the old list.
  const later = [...rowsEl.rows].filter((tr) => Number(tr.dataset.seq || 0) > since);
  rowsEl.textContent = "";
  seen.clear();
  addRecords(page.items, false);
  for (const tr of later.reverse()) {
    if (seen.has(tr.dataset.id)) continue;
    seen.add(tr.dataset.id);
    rowsEl.insertBefore(tr, rowsEl.firstChild);
  }
}

function loadStats() {
  return once("stats", async () => {
    const response = await fetch("/stats");
    if (response.ok) showCounters(await response.json());
  });
}

function graphUrl(img) {
  // The server takes widths 320..2400 and heights 200..1600 pixels.
  const width = Math.max(320, Math.min(1600, Math.round(img.clientWidth || 800)));
  const height = Math.max(200, Math.round(width * 0.5));
  return "/graphs/" + img.dataset.kind + ".png?range=" + encodeURIComponent(rangeEl.value) +
    (hostEl.value ? "&host=" + encodeURIComponent(hostEl.value) : "") +
    "&width=" + width + "&height=" + height + "&t=" + Date.now();
}

// One graph, loaded off-screen and shown once complete; resolves either way.
function loadGraph(img) {
  return new Promise((resolve) => {
    const next = new Image();
    next.onload = () => { img.src = next.src; img.dataset.loaded = String(Date.now()); resolve(); };
    next.onerror = () => { img.dataset.failed = String(Date.now()); scheduleGraphs(); resolve(); };
    next.src = graphUrl(img);
  });
}

function refreshGraphs() {
  for (const img of document.querySelectorAll(".graphs img")) {
    once("graph-" + img.dataset.kind, () => loadGraph(img));
  }
}

function scheduleGraphs() {
  if (graphTimer !== null) return;
  graphTimer = setTimeout(() => { graphTimer = null; refreshGraphs(); }, GRAPH_DEBOUNCE_MS);
}

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => setLive("connected", "live");
  source.onerror = () => setLive("disconnected", "reconnecting…");
  source.addEventListener("hello", (e) => {
    showCounters(JSON.parse(e.data).counters);
    loadRecent();
  });
  source.addEventListener("records", (e) => {
    const msg = JSON.parse(e.data);
    streamSeq += 1;
    addRecords(msg.records, true);
    showCounters(msg.counters);
    scheduleGraphs();
    scheduleHosts();
  });
  source.addEventListener("resync", () => { loadRecent(); loadStats(); });
}

let hostsTimer = null;
function scheduleHosts() {
  if (hostsTimer !== null) return;
  hostsTimer = setTimeout(() => { hostsTimer = null; loadHosts(); }, GRAPH_DEBOUNCE_MS);
}

document.getElementById("filters").addEventListener("change", refilter);
hostEl.addEventListener("change", () => {
  document.getElementById("export").href =
    "/logs/export" + (hostEl.value ? "?host=" + encodeURIComponent(hostEl.value) : "");
  refilter();
  refreshGraphs();
  loadHosts();
});
rangeEl.addEventListener("change", () => { refreshGraphs(); loadHosts(); });
window.addEventListener("resize", scheduleGraphs);

loadStats();
loadHosts();
refreshGraphs();
setInterval(refreshGraphs, GRAPH_REFRESH_MS);
connect();
