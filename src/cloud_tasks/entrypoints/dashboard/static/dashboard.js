// The cloud_tasks dashboard: polls /api/job and draws every plot as SVG. No library, no
// request to any other host. Text from the database is always set with textContent.
"use strict";

const REFRESH_MS = 2000;
const NS = "http://www.w3.org/2000/svg";
const W = 560, H = 220, PAD = { left: 52, right: 12, top: 12, bottom: 28 };
const COLORS = ["#2f6fdb", "#2e8b57", "#d68910", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d"];

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function fmtNumber(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
  if (Math.abs(v) >= 10) return v.toFixed(0);
  if (Math.abs(v) >= 1) return String(Number(v.toFixed(1)));
  return v === 0 ? "0" : v.toPrecision(2);
}

function fmtUsd(v) {
  if (v === null || v === undefined) return "–";
  return "$" + (v >= 1 ? v.toFixed(2) : v.toFixed(4));
}

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

function fmtClock(t) {
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 8);
}

function clear(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
}

function empty(svg, message) {
  clear(svg);
  svg.dataset.points = "0";
  svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, message));
}

function axes(svg, x0, x1, yMax, xFormat, yFormat) {
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  for (let k = 0; k <= 4; k++) {
    const y = PAD.top + plotH * (1 - k / 4);
    svg.appendChild(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.appendChild(el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, yFormat(yMax * k / 4)));
  }
  svg.appendChild(el("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom, class: "axis" }));
  svg.appendChild(el("line", { x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom, class: "axis" }));
  for (let k = 0; k <= 3; k++) {
    const x = PAD.left + plotW * k / 3;
    svg.appendChild(el("text", { x, y: H - 8, "text-anchor": k === 0 ? "start" : k === 3 ? "end" : "middle" },
      xFormat(x0 + (x1 - x0) * k / 3)));
  }
  return {
    x: (v) => PAD.left + plotW * (x1 > x0 ? (v - x0) / (x1 - x0) : 0),
    y: (v) => PAD.top + plotH * (1 - (yMax > 0 ? v / yMax : 0)),
  };
}

// The top of the y axis: four grid steps of 1, 2, 2.5 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return 4 * m * p;
  return 40 * p;
}

function legend(svg, items) {
  let x = PAD.left + 6;
  for (const item of items) {
    svg.appendChild(el("rect", { x, y: PAD.top + 2, width: 10, height: 10, fill: item.color }));
    const label = el("text", { x: x + 14, y: PAD.top + 11 }, item.label);
    svg.appendChild(label);
    x += 24 + item.label.length * 6.2;
  }
}

// series: [{label, values, color, dashed, step}], times: x values
function lineChart(svg, times, series, opts) {
  opts = opts || {};
  const nonzero = series.reduce((n, s) => n + s.values.filter((v) => v > 0).length, 0);
  const points = opts.keepEmpty ? series.reduce((n, s) => n + s.values.length, 0) : nonzero;
  if (!times.length || points === 0) {
    empty(svg, opts.emptyText || "no data yet");
    return;
  }
  clear(svg);
  let yMax = Math.max(opts.yMin || 0, ...series.map((s) => Math.max(0, ...s.values)));
  if (opts.hline) yMax = Math.max(yMax, opts.hline.value);
  yMax = niceMax(yMax * 1.05);
  const x0 = opts.x0 !== undefined ? opts.x0 : times[0];
  const sc = axes(svg, x0, times[times.length - 1], yMax, opts.xFormat || fmtClock, opts.yFormat || fmtNumber);
  series.forEach((s) => {
    let d = `M${sc.x(x0).toFixed(1)},${sc.y(s.step ? 0 : s.values[0] || 0).toFixed(1)}`;
    s.values.forEach((v, i) => {
      if (s.step && i > 0) d += ` L${sc.x(times[i - 1]).toFixed(1)},${sc.y(v).toFixed(1)}`;
      else if (s.step) d += ` L${sc.x(x0).toFixed(1)},${sc.y(v).toFixed(1)}`;
      d += ` L${sc.x(times[i]).toFixed(1)},${sc.y(v).toFixed(1)}`;
    });
    const attrs = { d, fill: "none", stroke: s.color, "stroke-width": 2, class: "series" };
    if (s.dashed) attrs["stroke-dasharray"] = "5 4";
    svg.appendChild(el("path", attrs));
  });
  if (opts.hline) {
    const y = sc.y(opts.hline.value);
    svg.appendChild(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#c0392b", "stroke-dasharray": "6 4" }));
    svg.appendChild(el("text", { x: W - PAD.right - 4, y: y - 4, "text-anchor": "end" }, opts.hline.label));
  }
  for (const m of opts.markers || []) {
    const x = sc.x(m.at), y = PAD.top + 6;
    const marker = el("path", { d: `M${x - 5},${y - 5} L${x + 5},${y - 5} L${x},${y + 3} Z`, fill: "#c0392b", class: "marker" });
    marker.appendChild(el("title", {}, m.title));
    svg.appendChild(marker);
    svg.appendChild(el("line", { x1: x, x2: x, y1: y + 3, y2: H - PAD.bottom, stroke: "#c0392b", "stroke-width": 1, "stroke-dasharray": "2 3" }));
  }
  if (opts.point) {
    const cx = sc.x(opts.point.at), cy = sc.y(opts.point.value);
    svg.appendChild(el("circle", { cx, cy, r: 4, fill: "#d68910" }));
    svg.appendChild(el("text", { x: cx - 6, y: cy - 8, "text-anchor": "end" }, opts.point.label));
  }
  legend(svg, series.filter((s) => s.label).map((s) => ({ label: s.label, color: s.color })));
  svg.dataset.points = String(points);
  svg.dataset.nonzero = String(nonzero);
}

function histogram(svg, edges, counts) {
  const points = counts.filter((c) => c > 0).length;
  if (!points) {
    empty(svg, "no completed task yet");
    return;
  }
  clear(svg);
  const yMax = niceMax(Math.max(...counts) * 1.05);
  const lo = edges[0], hi = edges[edges.length - 1];
  const sc = axes(svg, lo, hi > lo ? hi : lo + 1, yMax, (v) => fmtNumber(v) + "s", fmtNumber);
  counts.forEach((c, i) => {
    if (!c) return;
    const x = sc.x(edges[i]), x2 = sc.x(edges[i + 1]);
    const bar = el("rect", { x: x + 1, y: sc.y(c), width: Math.max(1, x2 - x - 2), height: sc.y(0) - sc.y(c), fill: "#2f6fdb", class: "bar" });
    bar.appendChild(el("title", {}, `${fmtNumber(edges[i])}–${fmtNumber(edges[i + 1])} s: ${c} tasks`));
    svg.appendChild(bar);
  });
  svg.dataset.points = String(points);
}

function fillTable(id, rows) {
  const body = $(id).querySelector("tbody");
  while (body.firstChild) body.removeChild(body.firstChild);
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const cell of row) {
      const td = html("td", cell.text !== undefined ? cell.text : String(cell));
      if (cell.num) td.className = "num";
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = html("td", "none", "muted");
    td.colSpan = $(id).querySelectorAll("th").length;
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function render(data) {
  const job = data.job, c = data.counts, p = data.progress;
  $("job-id").textContent = job.job_id || "job";
  $("job-provider").textContent = job.provider ? `on ${job.provider}` : "";
  document.title = `${job.job_id || "job"} · cloud_tasks`;
  const badge = $("job-state");
  badge.textContent = job.done ? "done" : "running";
  badge.className = "badge " + (job.done ? "done" : "running");
  $("updated").textContent = "updated " + fmtClock(data.now) +
    (data.now - data.series_at > 3 ? ` · plots as of ${fmtClock(data.series_at)} (a large job: they refresh less often)` : "");
  for (const state of ["pending", "running", "completed", "failed", "total"]) {
    $("count-" + state).textContent = Math.round(c[state]).toLocaleString("en");
  }
  $("spent").textContent = fmtUsd(data.spend.spent_usd);
  const total = Math.max(c.total, 1);
  $("bar-completed").style.width = (100 * c.completed / total) + "%";
  $("bar-failed").style.width = (100 * c.failed / total) + "%";
  const pct = (100 * p.done / total).toFixed(1);
  $("progress-text").textContent = `${p.done} of ${c.total} tasks done (${pct} %) · ` +
    `${fmtNumber(p.throughput_per_s)} tasks/s · ` +
    (job.done ? "finished" : `ETA ${p.eta_s === null ? "unknown" : fmtDuration(p.eta_s)}`);

  const times = data.times;
  lineChart($("plot-completions"), times, [
    { label: "completed", values: data.completions.completed, color: "#2e8b57" },
    { label: "failed", values: data.completions.failed, color: "#c0392b" },
  ], { x0: job.started_at, emptyText: "no task finished yet" });
  lineChart($("plot-throughput"), times, [
    { label: "", values: data.completions.throughput_per_s, color: "#2f6fdb", step: true },
  ], { x0: job.started_at, emptyText: "no task finished yet", keepEmpty: p.done > 0 });

  const spend = data.spend, cap = spend.max_total_cost_usd;
  const spendOpts = { x0: job.started_at, yFormat: fmtUsd, emptyText: "nothing spent (this provider costs nothing)" };
  if (cap !== null && cap !== undefined) spendOpts.hline = { value: cap, label: `max_total_cost ${fmtUsd(cap)}` };
  if (!job.done && spend.projected_usd > spend.spent_usd) {
    spendOpts.point = { at: times[times.length - 1], value: spend.projected_usd, label: `projected ${fmtUsd(spend.projected_usd)}` };
  }
  // A job on free instances (local) spent $0 all along: a flat line, not "no data".
  spendOpts.keepEmpty = data.instances.started > 0;
  lineChart($("plot-spend"), times, [{ label: "spent", values: spend.values, color: "#d68910" }], spendOpts);
  $("spend-note").textContent = `${fmtUsd(spend.spent_usd)} spent · projected ${fmtUsd(spend.projected_usd)} · ` +
    `${fmtUsd(spend.price_per_hour_usd)}/h now`;

  const inst = data.instances;
  lineChart($("plot-instances"), times, inst.series.map((s, i) => ({
    label: s.label, values: s.values, color: COLORS[i % COLORS.length], dashed: !s.spot, step: true,
  })), {
    x0: job.started_at, emptyText: "no instance started yet",
    markers: inst.preemptions.map((m) => ({ at: m.at, title: `${m.instance_id} (${m.instance_type} ${m.zone}) preempted` })),
  });

  histogram($("plot-durations"), data.durations.edges, data.durations.counts);

  const why = $("why");
  while (why.firstChild) why.removeChild(why.firstChild);
  const reasons = data.why_not_larger;
  if (!reasons.length) why.appendChild(html("li", job.done ? "the job is done" : "no decision recorded yet", "muted"));
  for (const r of reasons) {
    const li = html("li");
    li.appendChild(html("span", r.kind.replace("_", " "), "kind " + r.kind));
    li.appendChild(document.createTextNode(r.text));
    why.appendChild(li);
  }
  fillTable("decisions", data.decisions.map((d) => [
    fmtClock(d.at), d.instance_type || "", { text: String(d.running), num: true }, { text: String(d.target), num: true },
    { text: String(d.starting), num: true }, { text: String(d.stopping), num: true }, { text: fmtUsd(d.spent_usd), num: true },
  ]));
  fillTable("slowest", data.slowest_running.map((t) => [t.task_id, t.instance_id, { text: "≥ " + fmtDuration(t.running_s), num: true }]));

  const errors = $("errors");
  while (errors.firstChild) errors.removeChild(errors.firstChild);
  if (!data.errors.length) errors.appendChild(html("p", "no failed task", "muted"));
  for (const e of data.errors) {
    const card = html("div", undefined, "error-card");
    card.appendChild(html("strong", `${e.count} × `));
    card.appendChild(html("span", e.error));
    card.appendChild(html("div", "tasks: " + e.task_ids.join(", ") + (e.count > e.task_ids.length ? ", …" : ""), "muted"));
    if (e.last_lines.length) card.appendChild(html("pre", e.last_lines.join("\n")));
    errors.appendChild(card);
  }
  $("log").textContent = data.log.map((l) => `${fmtClock(l.at)}  ${l.message}`).join("\n") || "nothing logged yet";
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function refresh() {
  try {
    const response = await fetch("/api/job", { cache: "no-store" });
    const data = await response.json();
    if (data.error) {
      $("job-state").textContent = data.error;
      $("job-state").className = "badge error";
    } else {
      render(data);
    }
  } catch (err) {
    $("job-state").textContent = "dashboard server unreachable";
    $("job-state").className = "badge error";
  }
  setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", refresh);
