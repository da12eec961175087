// The page of `vidseek serve`: search, result cards, a player that plays the moment's span, and the
// query's relevance curve over the whole video. Plain DOM; text from the server is set as text only.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const TOP_K = 20;
const state = { moments: [], current: null, curve: null, query: "", phrases: false };
const PHRASE_COLOURS = ["#d35400", "#16a085", "#8e44ad", "#2c3e50", "#c0392b"];  // phrase n of a query

function fmt(t) { return `${Number(t).toFixed(1)} s`; }

// GET a JSON API route; an error answer ({"error": message}) becomes an Error with that message.
async function api(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

function setStatus(text) { $("status").textContent = text; }

async function loadLibrary() {
  try {
    const [info, list] = await Promise.all([api("/api/info"), api("/api/videos?status=ok&limit=1000")]);
    const mins = Math.round(info.duration / 60);
    state.phrases = info.phrases;
    $("library").textContent = `${info.counts.ok} videos (${mins} min) indexed with ${info.model || "a bundle"}` +
      (info.domain === "synthetic" ? " (a model trained on synthetic video only)" : "") +
      (info.phrases ? "; each phrase of a query is found too" : "");
    const select = $("video");
    for (const v of list.videos) {
      const o = document.createElement("option");
      o.value = String(v.id);
      o.textContent = v.path;
      select.append(o);
    }
  } catch (e) {
    $("library").textContent = e.message;
  }
}

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  return { q: h.get("q") || "", video: h.get("video") || "" };
}

async function search(minScore) {
  const q = $("q").value.trim();
  if (!q) { setStatus("Type a few words describing the moment, e.g. person opens door."); return; }
  const video = $("video").value;
  const params = new URLSearchParams({ q, top_k: TOP_K });
  if (video) params.set("video", video);
  if (minScore !== undefined) params.set("min_score", minScore);
  if (state.phrases) params.set("phrases", "true");
  history.replaceState(null, "", "#" + new URLSearchParams(video ? { q, video } : { q }));
  setStatus("Searching…");
  $("no-match").hidden = true;
  try {
    const res = await api("/api/search?" + params);
    state.query = q;
    render(res);
  } catch (e) {
    setStatus(e.message);
    $("results").replaceChildren();
  }
}

function render(res) {
  state.moments = res.moments;
  const list = $("results");
  list.replaceChildren(...res.moments.map(card));
  const box = $("no-match");
  const notes = [];
  if (res.corrections.length) notes.push("Searched with " + res.corrections.map(([t, c]) => `“${c}” for “${t}”`).join(", ") + ".");
  if (res.unseen_words.length) notes.push(`This model never saw ${res.unseen_words.map((w) => `“${w}”`).join(", ")} in training.`);
  if (!res.moments.length && res.best) {
    const b = res.best;
    box.replaceChildren(document.createTextNode(notes.join(" ") + (notes.length ? " " : "") +
      `No moment matches “${res.query}”: the best candidate, ${b.video} ${fmt(b.start)}–${fmt(b.end)}, scores ` +
      `${b.score.toFixed(3)}, below the model's threshold ${res.threshold.toFixed(3)}.`));
    const more = document.createElement("button");
    more.type = "button";
    more.textContent = "Show the candidates anyway";
    more.addEventListener("click", () => search(0));
    box.append(more);
    box.hidden = false;
    setStatus(`No match (${res.took_ms.toFixed(0)} ms).`);
  } else if (!res.moments.length) {
    setStatus("No moments found: is the index empty?");
  } else {
    setStatus(`${res.moments.length} moment${res.moments.length > 1 ? "s" : ""} in ${res.took_ms.toFixed(0)} ms. ` +
              "Choose one to play it." + (notes.length ? " " + notes.join(" ") : ""));
  }
}

function card(m, i) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "card";
  b.dataset.index = String(i);
  b.setAttribute("aria-pressed", "false");
  b.setAttribute("aria-label", `Play ${m.video} from ${fmt(m.start)} to ${fmt(m.end)}, score ${m.score.toFixed(2)}`);
  const img = document.createElement("img");
  img.src = m.thumbnail_url;
  img.alt = "";
  img.loading = "lazy";
  img.addEventListener("error", () => { img.removeAttribute("src"); img.classList.add("missing"); });
  const meta = document.createElement("span");
  meta.className = "meta";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = m.video;
  name.title = m.video;
  const span = document.createElement("span");
  span.textContent = `${fmt(m.start)} – ${fmt(m.end)}`;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = m.score.toFixed(2);
  meta.append(name, span, score);
  b.append(img, meta);
  if (m.phrases && m.phrases.length) b.append(phraseList(m.phrases));
  b.addEventListener("click", () => play(i));
  li.append(b);
  return li;
}

// The phrases of a query as the model split it, each with its colour and its own span (PLPNet).
function phraseList(phrases) {
  const ul = document.createElement("ul");
  ul.className = "phrases";
  phrases.forEach((p, n) => {
    const li = document.createElement("li");
    li.style.setProperty("--phrase", PHRASE_COLOURS[n % PHRASE_COLOURS.length]);
    li.textContent = `“${p.text}” ${fmt(p.start)} – ${fmt(p.end)}`;
    li.title = `phrase weight ${p.weight.toFixed(2)}`;
    ul.append(li);
  });
  return ul;
}

// Play moment i: load its video (once), seek to its start, play, and stop (or loop) at its end.
function play(i) {
  const m = state.moments[i];
  state.current = m;
  document.querySelectorAll(".card").forEach((c) => c.setAttribute("aria-pressed", String(c.dataset.index === String(i))));
  $("player").hidden = false;
  $("now-title").textContent = m.video;
  $("now-span").textContent = `${fmt(m.start)} – ${fmt(m.end)} · score ${m.score.toFixed(2)}`;
  $("download").href = m.clip_url;
  const chips = $("now-phrases");
  chips.replaceChildren(...(m.phrases || []).map((p, n) => {
    const c = document.createElement("button");
    c.type = "button";
    c.className = "phrase";
    c.style.setProperty("--phrase", PHRASE_COLOURS[n % PHRASE_COLOURS.length]);
    c.textContent = `“${p.text}” ${fmt(p.start)}`;
    c.setAttribute("aria-label", `Play the phrase ${p.text} from ${fmt(p.start)}`);
    c.addEventListener("click", () => { seek(p.start); $("video-el").play().catch(() => {}); });
    return c;
  }));
  chips.hidden = !chips.children.length;
  const v = $("video-el");
  const start = () => { v.currentTime = m.start; v.play().catch(() => {}); };
  if (v.getAttribute("src") !== m.media_url) {
    v.src = m.media_url;
    v.addEventListener("loadedmetadata", start, { once: true });
  } else {
    start();
  }
  loadCurve(m);
}

// Stop (or loop) where the moment ends: checked on every frame while the video plays, when playback
// crosses the end (a viewer who seeks past it with the player's controls keeps watching).
let lastTime = 0;
function watchEnd() {
  const v = $("video-el"), m = state.current;
  if (m && lastTime < m.end && v.currentTime >= m.end) {
    if ($("loop").checked) v.currentTime = m.start;
    else v.pause();
  }
  lastTime = v.currentTime;
  drawHead();
  if (!v.paused) requestAnimationFrame(watchEnd);
}

async function loadCurve(m) {
  state.curve = null;
  $("curve").replaceChildren();
  try {
    const c = await api(m.curve_url);
    if (state.current !== m) return;
    state.curve = c;
    drawCurve();
  } catch (e) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", "10");
    t.setAttribute("y", "60");
    t.textContent = e.message;
    $("curve").replaceChildren(t);
  }
}

function curveDuration() {
  const c = state.curve;
  const v = $("video-el");
  return Math.max(isFinite(v.duration) ? v.duration : 0, c ? c.ends[c.ends.length - 1] : 0, 1e-3);
}

function drawCurve() {
  const c = state.curve, m = state.current, svg = $("curve");
  if (!c || !c.values.length) return;
  const d = curveDuration();
  const lo = Math.min(...c.values), hi = Math.max(...c.values), range = Math.max(hi - lo, 1e-6);
  const x = (t) => (t / d) * 1000;
  const y = (v) => 112 - ((v - lo) / range) * 104;
  // one point at the middle of each clip, and the first and last values held out to the clips' outer edges
  const times = [c.starts[0], ...c.values.map((_, i) => (c.starts[i] + c.ends[i]) / 2), c.ends[c.ends.length - 1]];
  const vals = [c.values[0], ...c.values, c.values[c.values.length - 1]];
  const pts = vals.map((v, i) => `${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`);
  const moment = document.createElementNS(SVG, "rect");
  moment.setAttribute("class", "moment");
  moment.setAttribute("x", x(m.start));
  moment.setAttribute("width", Math.max(x(m.end) - x(m.start), 2));
  moment.setAttribute("y", "0");
  moment.setAttribute("height", "120");
  const area = document.createElementNS(SVG, "polygon");
  area.setAttribute("class", "area");
  const first = pts[0].split(",")[0], last = pts[pts.length - 1].split(",")[0];
  area.setAttribute("points", `${first},120 ${pts.join(" ")} ${last},120`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", "line");
  line.setAttribute("points", pts.join(" "));
  const head = document.createElementNS(SVG, "line");
  head.setAttribute("class", "head");
  head.setAttribute("y1", "0");
  head.setAttribute("y2", "120");
  head.id = "playhead";
  // each phrase's span (PLPNet) as a coloured band along the top of the curve, one row per phrase
  const bands = (m.phrases || []).map((p, n) => {
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("class", "phrase-band");
    r.setAttribute("x", x(p.start));
    r.setAttribute("width", Math.max(x(p.end) - x(p.start), 2));
    r.setAttribute("y", String(2 + 7 * n));
    r.setAttribute("height", "5");
    r.setAttribute("fill", PHRASE_COLOURS[n % PHRASE_COLOURS.length]);
    const t = document.createElementNS(SVG, "title");
    t.textContent = `${p.text}: ${fmt(p.start)} – ${fmt(p.end)}`;
    r.append(t);
    return r;
  });
  svg.replaceChildren(moment, area, line, ...bands, head);
  svg.setAttribute("aria-valuemax", d.toFixed(1));
  drawHead();
}

function drawHead() {
  const head = document.getElementById("playhead");
  if (!head) return;
  const t = $("video-el").currentTime, x = (t / curveDuration()) * 1000;
  head.setAttribute("x1", x);
  head.setAttribute("x2", x);
  $("curve").setAttribute("aria-valuenow", t.toFixed(1));
  $("curve").setAttribute("aria-valuetext", fmt(t));
}

function seek(t) {
  const v = $("video-el");
  v.currentTime = Math.min(Math.max(t, 0), curveDuration());
  drawHead();
}

document.addEventListener("DOMContentLoaded", () => {
  // a ?token= in the address has set the server's cookie: take it out of the address bar and history
  const url = new URL(location.href);
  if (url.searchParams.has("token")) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url);
  }
  $("search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("video").addEventListener("change", () => { if ($("q").value.trim()) search(); });
  $("curve").addEventListener("click", (e) => {
    const box = $("curve").getBoundingClientRect();
    seek(((e.clientX - box.left) / box.width) * curveDuration());
  });
  $("curve").addEventListener("keydown", (e) => {
    const step = state.curve ? state.curve.stride_s : 2, v = $("video-el");
    const to = { ArrowLeft: v.currentTime - step, ArrowRight: v.currentTime + step, Home: state.current ? state.current.start : 0,
                 End: state.current ? state.current.end : v.currentTime }[e.key];
    if (to !== undefined) { e.preventDefault(); seek(to); }
  });
  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); }
    if ((e.key === "l" || e.key === "L") && !typing) $("loop").checked = !$("loop").checked;
  });
  $("video-el").addEventListener("loadedmetadata", drawCurve);
  $("video-el").addEventListener("play", () => { lastTime = $("video-el").currentTime; requestAnimationFrame(watchEnd); });
  $("video-el").addEventListener("ended", () => {
    if ($("loop").checked && state.current) { $("video-el").currentTime = state.current.start; $("video-el").play(); }
  });
  $("video-el").addEventListener("seeked", () => { lastTime = $("video-el").currentTime; drawHead(); });
  loadLibrary().then(() => {
    const h = readHash();
    if (h.video) $("video").value = h.video;
    if (h.q) { $("q").value = h.q; search(); }
  });
});
