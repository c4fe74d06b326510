// The node's dashboard: read-only, talks only to the node that served it (REST + the ledger
// event stream), no build step. docs/api.md documents every route it reads.
"use strict";

const HISTORY = 40; // epochs drawn
const state = {
  topic: null,
  epochs: new Map(), // topic -> Map(epoch -> {combined, workers, truth, loss})
  rewards: new Map(), // topic -> Map(actor -> {epoch, amount})
  checkpoints: [], // newest last: {height, events}
  refreshing: false,
  again: false,
};

const $ = (id) => document.getElementById(id);

function report(message) {
  console.error(message);
  const box = $("errors");
  box.hidden = false;
  box.textContent += message + "\n";
}

window.addEventListener("error", (e) => report("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => report("error: " + e.reason));

async function api(path, { missingOk = false } = {}) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  if (resp.status === 404 && missingOk) return null;
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

const short = (hex) => (hex ? String(hex).slice(0, 12) + "…" : "–");
const num = (v, digits = 6) =>
  v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toPrecision(digits);

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) cell(tr, text, cls);
    body.appendChild(tr);
  }
}

const yesNo = (b) => (b ? ["yes", "yes"] : ["no", "no"]);

function topicEpochs(topic) {
  if (!state.epochs.has(topic)) state.epochs.set(topic, new Map());
  return state.epochs.get(topic);
}

function epochOf(topic, epoch) {
  const m = topicEpochs(topic);
  if (!m.has(epoch)) m.set(epoch, {});
  return m.get(epoch);
}

// ---- network and this node ----

async function refreshStatus() {
  const s = await api("/v1/status");
  $("network").textContent = `${s.network} · ${short(s.network_id)}`;
  $("height").textContent = s.height;
  $("peers").textContent = s.peers;
  $("root").textContent = short(s.ledger_root);
  $("root").title = s.ledger_root;
  $("address").textContent = short(s.address);
  $("address").title = s.address;
  $("balance").textContent = s.balance;
  $("bond").textContent = s.bond;
  $("rewards").textContent = s.rewards;
  if (s.supply) $("supply").textContent = s.supply.total ?? JSON.stringify(s.supply);
  fill(
    "duties",
    (s.duties || []).map((d) => [
      [String(d.topic)],
      [d.role],
      yesNo(d.configured),
      yesNo(d.registered),
      yesNo(d.funded),
    ]),
  );
  fill(
    "submissions",
    (s.submissions || [])
      .slice()
      .sort((a, b) => b.time_ms - a.time_ms)
      .slice(0, 10)
      .map((x) => [
        [x.topic ?? "–"],
        [x.epoch ?? "–"],
        [x.kind],
        yesNo(x.accepted),
        [x.reason || ""],
      ]),
  );
  const cp = await api("/v1/checkpoints/latest", { missingOk: true });
  if (cp) {
    $("tip").textContent = `${cp.height} · ${short(cp.id)}`;
    $("tip").title = cp.id;
    $("signers").textContent = cp.signers;
  }
}

// ---- topics ----

async function refreshTopics() {
  const topics = await api("/v1/topics");
  const select = $("topics");
  const known = new Set([...select.options].map((o) => o.value));
  for (const t of topics) {
    if (known.has(String(t.id))) continue;
    const o = document.createElement("option");
    o.value = String(t.id);
    o.textContent = `${t.id} · ${t.name}`;
    select.appendChild(o);
  }
  if (state.topic === null && topics.length > 0) {
    state.topic = topics[0].id;
    select.value = String(state.topic);
  }
}

async function refreshTopic() {
  const id = state.topic;
  if (id === null) return;
  const latest = await api(`/v1/topics/${id}/inference`, { missingOk: true });
  if (latest) {
    const c = $("combined");
    c.textContent = num(latest.combined_value, 8);
    c.dataset.value = String(latest.combined_value);
    c.dataset.epoch = String(latest.epoch);
    $("combined-state").textContent = latest.finalized
      ? `epoch ${latest.epoch}, finalized at checkpoint ${latest.checkpoint_height}`
      : `epoch ${latest.epoch}, this node's own (not finalized yet)`;
    const weights = latest.inferer_weights || {};
    const total = Object.values(weights).reduce((a, b) => a + b, 0) || 1;
    fill(
      "weights",
      Object.entries(latest.inferer_values || {}).map(([k, v]) => [
        [short(k), "mono"],
        [num(v), "num"],
        [weights[k] === undefined ? "–" : num(weights[k] / total, 3), "num"],
      ]),
    );
    await loadHistory(id, latest.epoch);
  }
  const board = await api(`/v1/topics/${id}/leaderboard`, { missingOk: true });
  if (board) {
    const rewards = state.rewards.get(id) || new Map();
    fill(
      "leaderboard",
      board.entries.map((e) => {
        const last = rewards.get(`${e.address}/${e.role}`);
        return [
          [short(e.address), "mono"],
          [e.role],
          [num(e.score_ema, 4), "num"],
          [last ? `${last.amount} (epoch ${last.epoch})` : "–", "num"],
          [String(e.rewards ?? "–"), "num"],
        ];
      }),
    );
  }
  draw(id);
}

// The bundles of the last epochs (workers' values), each fetched once when finalized. Only
// epochs the ledger stream named (a finalized network inference) are asked for: an epoch
// without one would be a 404 the browser logs as an error.
async function loadHistory(id, newest) {
  const epochs = topicEpochs(id);
  const wanted = [];
  for (let e = Math.max(0, newest - HISTORY + 1); e <= newest; e++) {
    const rec = epochs.get(e);
    if (rec && rec.combined !== undefined && !rec.finalized) wanted.push(e);
  }
  const answers = await Promise.all(
    wanted.map((e) => api(`/v1/topics/${id}/inference?epoch=${e}`, { missingOk: true })),
  );
  for (const a of answers) {
    if (!a) continue;
    const rec = epochOf(id, a.epoch);
    rec.combined = a.combined_value;
    rec.workers = a.inferer_values || {};
    rec.finalized = a.finalized;
  }
}

// ---- charts (SVG, drawn here) ----

const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function scale(values, lo, hi) {
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (!Number.isFinite(min) || !Number.isFinite(max)) return () => (lo + hi) / 2;
  if (min === max) {
    min -= 1;
    max += 1;
  }
  return (v) => hi - ((v - min) / (max - min)) * (hi - lo);
}

function axes(svg, w, h, pad, xs, ys, yLabel) {
  svg.appendChild(svgEl("line", { x1: pad, y1: h - pad, x2: w - 8, y2: h - pad, class: "axis" }));
  svg.appendChild(svgEl("line", { x1: pad, y1: 8, x2: pad, y2: h - pad, class: "axis" }));
  const t = (x, y, s, anchor = "start") => {
    const el = svgEl("text", { x, y, "text-anchor": anchor });
    el.textContent = s;
    svg.appendChild(el);
  };
  t(pad, h - 4, `epoch ${xs[0]}`);
  t(w - 8, h - 4, `${xs[xs.length - 1]}`, "end");
  t(pad + 4, 18, `${num(Math.max(...ys), 5)} ${yLabel}`);
  t(pad + 4, h - pad - 4, num(Math.min(...ys), 5));
}

function polyline(svg, pts, cls) {
  if (pts.length < 2) return 0;
  svg.appendChild(svgEl("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: cls }));
  return pts.length;
}

function draw(id) {
  const epochs = [...topicEpochs(id).entries()].sort((a, b) => a[0] - b[0]).slice(-HISTORY);
  const chart = $("chart");
  chart.replaceChildren();
  const [w, h, pad] = [640, 260, 36];
  const withValue = epochs.filter(([, r]) => r.combined !== undefined);
  if (withValue.length > 0) {
    const xs = withValue.map(([e]) => e);
    const values = [];
    for (const [, r] of withValue) {
      values.push(r.combined, ...Object.values(r.workers || {}));
      if (r.truth !== undefined) values.push(r.truth);
    }
    const x = (e) => pad + ((e - xs[0]) / Math.max(1, xs[xs.length - 1] - xs[0])) * (w - pad - 12);
    const y = scale(values, 12, h - pad);
    axes(chart, w, h, pad, xs, values, "");
    const workers = new Set(withValue.flatMap(([, r]) => Object.keys(r.workers || {})));
    for (const k of workers) {
      const pts = withValue
        .filter(([, r]) => r.workers && r.workers[k] !== undefined)
        .map(([e, r]) => [x(e), y(r.workers[k])]);
      polyline(chart, pts, "worker");
    }
    let points = polyline(chart, withValue.map(([e, r]) => [x(e), y(r.combined)]), "net");
    for (const [e, r] of withValue) {
      if (r.truth === undefined) continue;
      chart.appendChild(svgEl("circle", { cx: x(e), cy: y(r.truth), r: 2.5, class: "truth" }));
      points += 1;
    }
    chart.dataset.points = String(points);
  }
  const loss = $("loss");
  loss.replaceChildren();
  const settled = epochs.filter(([, r]) => r.loss !== undefined && r.loss !== null);
  if (settled.length > 0) {
    const [lw, lh] = [640, 160];
    const xs = settled.map(([e]) => e);
    const ls = settled.map(([, r]) => r.loss);
    const x = (e) => pad + ((e - xs[0]) / Math.max(1, xs[xs.length - 1] - xs[0])) * (lw - pad - 12);
    const y = scale(ls, 12, lh - pad);
    axes(loss, lw, lh, pad, xs, ls, "");
    const n = polyline(loss, settled.map(([e, r]) => [x(e), y(r.loss)]), "loss");
    loss.dataset.points = String(n);
  }
}

// ---- the ledger event stream ----

function onCheckpoint(msg) {
  const { height, events } = JSON.parse(msg.data);
  for (const ev of events) {
    if (ev.event === "network_inference") {
      epochOf(ev.topic, ev.epoch).combined = ev.combined;
    } else if (ev.event === "scored") {
      const rec = epochOf(ev.topic, ev.epoch);
      if (ev.ground_truth !== undefined) rec.truth = ev.ground_truth;
      if (ev.network_loss !== undefined) rec.loss = ev.network_loss;
    } else if (ev.event === "reward") {
      if (!state.rewards.has(ev.topic)) state.rewards.set(ev.topic, new Map());
      state.rewards.get(ev.topic).set(`${ev.to}/${ev.role}`, { epoch: ev.epoch, amount: ev.amount });
    }
  }
  state.checkpoints.push({ height, events: events.length });
  if (state.checkpoints.length > 50) state.checkpoints.shift();
  const list = $("checkpoints");
  list.replaceChildren();
  for (const c of state.checkpoints.slice().reverse()) {
    const li = document.createElement("li");
    li.textContent = `height ${c.height}: ${c.events} ledger event${c.events === 1 ? "" : "s"}`;
    list.appendChild(li);
  }
  schedule();
}

function listen() {
  // `after=0`: every height the node still holds first, then live ones.
  const es = new EventSource("/v1/events?after=0&kinds=network_inference,scored,reward");
  es.addEventListener("checkpoint", onCheckpoint);
  es.addEventListener("open", () => {
    $("live").classList.add("on");
    $("live").textContent = "live";
  });
  es.addEventListener("error", () => {
    // The browser reconnects by itself; only say so.
    $("live").classList.remove("on");
    $("live").textContent = "reconnecting";
  });
}

// ---- refresh loop: at most one at a time, again if asked meanwhile ----

async function refresh() {
  if (state.refreshing) {
    state.again = true;
    return;
  }
  state.refreshing = true;
  try {
    await refreshStatus();
    await refreshTopics();
    await refreshTopic();
  } catch (e) {
    report(String(e));
  } finally {
    state.refreshing = false;
    if (state.again) {
      state.again = false;
      schedule();
    }
  }
}

let timer = null;
function schedule() {
  if (timer !== null) return;
  timer = setTimeout(() => {
    timer = null;
    refresh();
  }, 250);
}

document.addEventListener("DOMContentLoaded", () => {
  $("topics").addEventListener("change", (e) => {
    state.topic = Number(e.target.value);
    refresh();
  });
  refresh();
  listen();
  // The stream says when something was finalized; status (peers, submissions) also moves
  // between checkpoints.
  setInterval(schedule, 5000);
});
