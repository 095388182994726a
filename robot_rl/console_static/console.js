// robot_rl operator console: polls /api/state, refreshes camera images, posts operator events.
// Plain JS, no dependencies. Everything shown comes from textContent (never innerHTML).
"use strict";

const STATE_PERIOD_MS = 250;
const STALE_STATUS_S = 3;
const KEYS = { y: "success", n: "failure", x: "reset", p: "pause", t: "takeover", e: "estop" };
const KNOWN = ["actor_id", "episode", "step", "intervening", "paused", "policy_version", "last_reward",
  "device", "device_connected"];

let cameraPeriodMs = 125;
let history = [];
let historyLen = 1000;
let lastEpisode = 0;
let confirmTimer = null;
const cameras = new Map(); // name -> {img, n}

function $(id) { return document.getElementById(id); }

function fmt(v) {
  if (v === null || v === undefined) return "\u2013";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function setConn(ok, text) {
  const c = $("conn");
  c.textContent = text;
  c.className = "conn " + (ok ? "ok" : "err");
}

function banner(text) {
  const b = $("banner");
  b.textContent = text || "";
  b.hidden = !text;
}

// -- status -----------------------------------------------------------------------------------------------

function statusCell(key) {
  let td = $("status-" + key);
  if (!td) {
    const tr = document.createElement("tr");
    tr.id = "row-" + key;
    const th = document.createElement("th");
    th.textContent = key.replace(/_/g, " ");
    td = document.createElement("td");
    td.id = "status-" + key;
    tr.append(th, td);
    $("status-rows").append(tr);
  }
  return td;
}

function showStatus(state) {
  const s = state.status || {};
  for (const key of new Set([...KNOWN, ...Object.keys(s)])) statusCell(key).textContent = fmt(s[key]);
  $("status-pending_events").textContent = String(state.pending_events);
  $("row-intervening").classList.toggle("alert", s.intervening === true);
  $("row-paused").classList.toggle("warn", s.paused === true);
  $("row-device_connected").classList.toggle("bad", s.device_connected === false);
  const pause = $("btn-pause"), take = $("btn-takeover");
  pause.classList.toggle("on", s.paused === true);
  pause.setAttribute("aria-pressed", String(s.paused === true));
  take.classList.toggle("on", s.intervening === true);
  take.setAttribute("aria-pressed", String(s.intervening === true));
  if (state.status_age_s !== null && state.status_age_s > STALE_STATUS_S) {
    banner("The actor has not updated its status for " + Math.round(state.status_age_s) + " s.");
  } else {
    banner("");
  }
}

// -- cameras ----------------------------------------------------------------------------------------------

function addCamera(name) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.id = "img-" + name;
  img.alt = name + " camera";
  const cap = document.createElement("figcaption");
  cap.id = "cap-" + name;
  cap.textContent = name;
  fig.append(img, cap);
  $("cameras").append(fig);
  $("no-cameras").hidden = true;
  const cam = { img: img, n: 0, requested: 0 };
  cameras.set(name, cam);
  // the next image is requested once the previous one has loaded (or failed), at most camera_hz
  const next = (delay) => setTimeout(() => {
    cam.requested = performance.now();
    img.src = "/camera/" + encodeURIComponent(name) + ".jpg?n=" + (cam.n++) + "&t=" + Date.now();
  }, delay);
  img.addEventListener("load", () => next(Math.max(0, cameraPeriodMs - (performance.now() - cam.requested))));
  img.addEventListener("error", () => next(1000));
  next(0);
}

// -- plots ------------------------------------------------------------------------------------------------

function plot(canvasId, values, color, label) {
  const canvas = $(canvasId);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 28, right = 6, top = 6, bottom = 16;
  const pw = w - left - right, ph = h - top - bottom;
  const y = (v) => top + ph * (1 - v);
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#888";
  ctx.strokeStyle = "#333";
  ctx.lineWidth = 1;
  for (const v of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(left, y(v));
    ctx.lineTo(left + pw, y(v));
    ctx.stroke();
    ctx.fillText(v.toFixed(1), 2, y(v) + 3);
  }
  if (values.length === 0) {
    ctx.fillText("no episodes yet", left + 8, top + ph / 2);
    return;
  }
  const first = values[0][0], last = values[values.length - 1][0];
  const span = Math.max(1, last - first);
  const x = (ep) => left + pw * (values.length === 1 ? 0.5 : (ep - first) / span);
  ctx.fillText("episode " + first, left, h - 3);
  const lastText = String(last);
  ctx.fillText(lastText, left + pw - ctx.measureText(lastText).width, h - 3);
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach(([ep, v], i) => (i === 0 ? ctx.moveTo(x(ep), y(v)) : ctx.lineTo(x(ep), y(v))));
  ctx.stroke();
  if (values.length <= 60) for (const [ep, v] of values) ctx.fillRect(x(ep) - 2, y(v) - 2, 4, 4);
  const now = values[values.length - 1][1];
  ctx.fillText(label + " " + (100 * now).toFixed(0) + "%", left + 4, top + 10);
}

function drawPlots() {
  plot("plot-success", history.map((e) => [e.episode, e.success_ma]), "#4fc36b", "now");
  plot("plot-intervention", history.map((e) => [e.episode, e.intervention_rate]), "#f0a030", "last");
}

// -- state loop -------------------------------------------------------------------------------------------

async function pollState() {
  try {
    const r = await fetch("/api/state?since=" + lastEpisode, { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const state = await r.json();
    setConn(true, "live");
    cameraPeriodMs = 1000 / (state.camera_hz || 8);
    historyLen = state.history_len || historyLen;
    $("ma-window").textContent = String(state.ma_window);
    $("episodes-count").textContent = String(state.episodes);
    showStatus(state);
    for (const name of state.cameras) if (!cameras.has(name)) addCamera(name);
    if (state.episodes < lastEpisode) {
      // the console restarted: start the plots again from what it has
      history = [];
      lastEpisode = 0;
    } else if (state.history.length > 0 || history.length === 0) {
      history = history.concat(state.history).slice(-historyLen);
      lastEpisode = state.episodes;
      drawPlots();
    }
  } catch (e) {
    setConn(false, "console not reachable (" + e.message + "); is the actor running?");
  }
  setTimeout(pollState, STATE_PERIOD_MS);
}

// -- events -----------------------------------------------------------------------------------------------

function confirmMsg(ok, text) {
  const c = $("confirm");
  c.textContent = text;
  c.className = "confirm " + (ok ? "ok" : "err");
  clearTimeout(confirmTimer);
  confirmTimer = setTimeout(() => { c.textContent = ""; c.className = "confirm"; }, 3000);
}

async function sendEvent(event) {
  const btn = $("btn-" + event);
  btn.classList.add("sent");
  setTimeout(() => btn.classList.remove("sent"), 300);
  try {
    const r = await fetch("/api/event", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ event: event }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
    confirmMsg(true, event + " sent at " + new Date().toLocaleTimeString());
  } catch (e) {
    confirmMsg(false, event + " NOT sent: " + e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const btn of document.querySelectorAll("button.ev")) {
    btn.addEventListener("click", () => sendEvent(btn.dataset.event));
  }
  document.addEventListener("keydown", (e) => {
    if (e.repeat || e.ctrlKey || e.altKey || e.metaKey) return;
    const event = KEYS[e.key.toLowerCase()];
    if (event) {
      e.preventDefault();
      sendEvent(event);
    }
  });
  window.addEventListener("resize", drawPlots);
  drawPlots();
  pollState();
});
