// mediafm explorer: a catalog list, a title as a virtualised strip of shots with prediction
// lanes and moments, and a shot panel with playback and the nearest shots in other titles.
"use strict";

const TILE = 96;  // px per shot in the strip
const PAGE = 50;
const state = { q: "", offset: 0, title: null, shot: null };
const $ = (sel) => document.querySelector(sel);

function status(text) { $("#status").textContent = text || ""; }

async function api(path) {
  const r = await fetch(path);
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${r.status}: ${detail}`);
  }
  return r.json();
}

function clock(s) {
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), sec = Math.floor(s % 60);
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(sec).padStart(2, "0")}`;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function hue(i, n) { return Math.round(360 * i / Math.max(n, 1)); }

// --------------------------------------------------------------------------- catalog

async function loadTitles() {
  try {
    const params = new URLSearchParams({ q: state.q, offset: state.offset, limit: PAGE });
    const data = await api(`/api/titles?${params}`);
    const list = $("#titles");
    list.replaceChildren(...data.titles.map((t) => el("li", {
      "data-title": t.title_id, onclick: () => openTitle(t.title_id),
    }, el("div", { text: t.title_id }),
       el("div", { class: "tags", text: [`${t.n_shots} shots`, t.tags.join(", ")]
         .filter(Boolean).join(" · ") }))));
    const pager = $("#pager");
    const prev = el("button", { text: "‹ prev", onclick: () => { state.offset -= PAGE; loadTitles(); } });
    const next = el("button", { text: "next ›", onclick: () => { state.offset += PAGE; loadTitles(); } });
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + PAGE >= data.total;
    pager.replaceChildren(prev, el("span", {
      text: `${data.total ? state.offset + 1 : 0}–${Math.min(state.offset + PAGE, data.total)} of ${data.total}`,
    }), next);
    status("");
  } catch (e) { status(e.message); }
}

// --------------------------------------------------------------------------- title

async function openTitle(titleId, shot = null) {
  try {
    status(`loading ${titleId}…`);
    const t = await api(`/api/titles/${encodeURIComponent(titleId)}`);
    state.title = t;
    state.shot = null;
    document.querySelectorAll("#titles li").forEach((li) =>
      li.classList.toggle("active", li.dataset.title === titleId));
    renderTitle(t);
    status("");
    if (shot !== null) selectShot(shot, true);
  } catch (e) { status(e.message); }
}

function lanes(t) {
  // one lane per task: [name, kind, labels, per-shot [value in 0..1, colour, tooltip]]
  return Object.entries(t.predictions).map(([task, p]) => {
    const scores = p.scores;
    let lo = 0, hi = 1;
    if (p.kind === "ranking") {
      const flat = scores.map((s) => s[0]);
      lo = Math.min(...flat); hi = Math.max(...flat);
    }
    const cells = scores.map((s) => {
      if (p.labels.length > 1) {
        const best = s.indexOf(Math.max(...s));
        return [s[best], `hsl(${hue(best, p.labels.length)} 65% 50%)`, `${p.labels[best]} ${s[best]}`];
      }
      const v = (s[0] - lo) / Math.max(hi - lo, 1e-9);
      return [v, p.kind === "boundary" ? "#d9534f" : "#2f6fed", `${task} ${s[0]}`];
    });
    return { task, kind: p.kind, labels: p.labels, cells };
  });
}

function renderTitle(t) {
  const view = $("#title-view");
  const laneData = lanes(t);
  const strip = el("div", { class: "strip", "aria-label": "shots" });
  const track = el("div", { class: "track" });
  track.style.width = `${t.n_shots * TILE}px`;
  strip.append(track);
  const overview = el("canvas", { class: "overview", "aria-label": "overview" });
  const legend = el("div", { class: "legend" }, ...laneData.map((l) =>
    el("span", { text: `${l.task} (${l.kind})` })));
  const moments = el("div", { class: "moments" }, el("h3", { text: "Moments" }),
    ...(t.moments.length ? t.moments.map((m) => el("button", {
      onclick: () => selectShot(m.first_shot, true), title: m.reason,
      text: `${m.kind} · ${m.task} #${m.rank}: shots ${m.first_shot}–${m.last_shot} ` +
            `(${clock(m.start_s)}–${clock(m.end_s)}) score ${m.score}`,
    })) : [el("p", { class: "hint", text: "No predictions: serve with --model and --heads (or --pred)." })]));
  view.replaceChildren(
    el("h2", { text: t.title_id }),
    t.has_video && t.media ? el("div", { class: "downloads" }, "timeline: ",
      ...["otio", "edl", "fcpxml", "csv", "chapters"].map((f) => el("a", {
        href: `/api/titles/${encodeURIComponent(t.title_id)}/timeline?format=${f}`,
        text: f, download: "" }))) : "",
    el("div", { class: "meta", text: [`${t.n_shots} shots`, clock(t.duration_s),
      t.tags.join(", "), t.synopsis].filter(Boolean).join(" · ") }),
    overview, strip, legend, moments);
  const height = 52 + 16 + laneData.length * 13 + 6;
  strip.style.height = `${height + 16}px`;

  const drawn = new Map();
  function draw() {
    const first = Math.max(0, Math.floor(strip.scrollLeft / TILE) - 5);
    const last = Math.min(t.n_shots, Math.ceil((strip.scrollLeft + strip.clientWidth) / TILE) + 5);
    for (const [i, node] of drawn) {
      if (i < first || i >= last) { node.remove(); drawn.delete(i); }
    }
    for (let i = first; i < last; i++) {
      if (drawn.has(i)) continue;
      const tile = el("div", { class: "tile", "data-shot": i, onclick: () => selectShot(i) });
      tile.style.left = `${i * TILE}px`;
      tile.classList.toggle("selected", i === state.shot);
      tile.append(t.thumbs
        ? el("img", { src: thumbUrl(t.title_id, i), alt: `shot ${i}`, loading: "lazy" })
        : el("div", { class: "plain", text: `#${i}` }));
      tile.append(el("div", { class: "time", text: `#${i} ${clock(t.shots.start_s[i])}` +
        (t.shots.has_text[i] ? " T" : "") }));
      for (const l of laneData) {
        const [v, colour, tip] = l.cells[i];
        const bar = el("span", { title: tip });
        bar.style.height = `${Math.round(12 * Math.max(0, Math.min(1, v)))}px`;
        bar.style.background = colour;
        tile.append(el("div", { class: "lane" }, bar));
      }
      track.append(tile);
      drawn.set(i, tile);
    }
  }
  strip.addEventListener("scroll", () => requestAnimationFrame(draw));
  window.addEventListener("resize", () => requestAnimationFrame(draw));
  state.draw = draw;
  state.strip = strip;
  draw();
  drawOverview(overview, t, laneData);
  overview.addEventListener("click", (ev) => {
    const i = Math.floor(ev.offsetX / overview.clientWidth * t.n_shots);
    selectShot(Math.max(0, Math.min(t.n_shots - 1, i)), true);
  });
}

function drawOverview(canvas, t, laneData) {
  canvas.width = canvas.clientWidth || 800;
  const lanes = 36, band = (t.scenes || []).length ? 8 : 0;  // scenes: a band under the lanes
  canvas.height = lanes + band;
  const ctx = canvas.getContext("2d");
  const w = canvas.width / t.n_shots;
  const lane = laneData.find((l) => l.kind === "binary") || laneData[0];
  if (lane) {
    lane.cells.forEach(([v, colour], i) => {
      ctx.fillStyle = colour;
      ctx.globalAlpha = 0.25 + 0.75 * Math.max(0, Math.min(1, v));
      ctx.fillRect(i * w, lanes - 30 * v, Math.max(w, 1), 30 * v);
    });
    ctx.globalAlpha = 1;
  }
  ctx.fillStyle = "#1d2330";
  for (const m of t.moments) ctx.fillRect(m.first_shot * w, 0, Math.max(2, (m.last_shot - m.first_shot + 1) * w), 4);
  (t.scenes || []).forEach(([a, b], k) => {  // alternating colours, one per scene
    ctx.fillStyle = k % 2 ? "rgba(120, 90, 200, 0.6)" : "rgba(40, 160, 140, 0.6)";
    ctx.fillRect(a * w, lanes + 2, Math.max(2, (b - a + 1) * w), band - 2);
  });
}

function thumbUrl(titleId, i) {
  return `/api/titles/${encodeURIComponent(titleId)}/shots/${i}/thumb.jpg`;
}

// --------------------------------------------------------------------------- shot

async function selectShot(i, scroll = false) {
  const t = state.title;
  if (!t) return;
  state.shot = i;
  if (scroll) state.strip.scrollLeft = Math.max(0, i * TILE - state.strip.clientWidth / 2);
  state.draw();
  document.querySelectorAll(".tile").forEach((n) =>
    n.classList.toggle("selected", Number(n.dataset.shot) === i));
  const start = t.shots.start_s[i], end = t.shots.end_s[i];
  const panel = $("#shot-panel");
  const parts = [el("h3", { text: `${t.title_id} · shot ${i}` }),
    el("div", { class: "meta", text: `${clock(start)}–${clock(end)}` +
      (t.shots.has_text[i] ? " · has subtitles" : " · no subtitles") })];
  if (t.media) {
    // an audio-only title (a podcast) plays in an audio element: no black picture
    const video = t.has_video === false
      ? el("audio", { controls: "", preload: "metadata" })
      : el("video", { controls: "", preload: "metadata", muted: "" });
    video.src = `/api/titles/${encodeURIComponent(t.title_id)}/media#t=${start},${end}`;
    video.addEventListener("timeupdate", () => { if (video.currentTime >= end) video.pause(); });
    parts.push(video);
  }
  for (const [task, p] of Object.entries(t.predictions)) {
    const s = p.scores[i];
    const text = p.labels.length > 1
      ? p.labels.map((l, k) => [l, s[k]]).sort((a, b) => b[1] - a[1]).slice(0, 3)
          .map(([l, v]) => `${l} ${v}`).join(", ")
      : `${s[0]}`;
    parts.push(el("div", { class: "meta", text: `${task}: ${text}` }));
  }
  const neighbours = el("div", { class: "neighbours", "aria-label": "neighbours" });
  const heading = el("h4", { text: "Nearest shots in other titles" });
  parts.push(heading, neighbours);
  panel.replaceChildren(...parts);
  try {
    const params = new URLSearchParams({ title: t.title_id, shot: i, k: 8, other_titles: true });
    const found = await api(`/api/search?${params}`);
    if (state.shot !== i) return;
    heading.textContent = "Nearest shots in other titles";
    heading.append(el("div", { class: "tags searched", text: `searched: ${found.searched}` }));
    neighbours.replaceChildren(...found.hits.map((h) => el("div", {
      class: "neighbour", "data-title": h.title_id,
      onclick: () => openTitle(h.title_id, h.shot_index),
    }, t.thumbs ? el("img", { src: thumbUrl(h.title_id, h.shot_index), alt: "" })
               : el("div", { class: "plain", text: `#${h.shot_index}` }),
       el("div", { text: `${h.title_id} #${h.shot_index}` }),
       el("div", { class: "tags", text: `${clock(h.start_s)} · ${h.score.toFixed(3)}`,
                   title: explained(h) }))));
  } catch (e) { neighbours.replaceChildren(el("p", { class: "hint", text: e.message })); }
}

// --------------------------------------------------------------------------- find a moment

function explained(h) {
  // per-modality scores, e.g. "text 0.71 · video 0.12"
  return Object.entries(h.modalities || {}).filter(([, v]) => v !== null)
    .map(([m, v]) => `${m} ${Number(v).toFixed(2)}`).join(" · ");
}

function lineWithWords(line, words) {
  // the shot's line of text, the query's words in it marked
  const span = el("span", { class: "line" });
  if (!line) return span;
  const marked = new Set((words || []).map((w) => w.toLowerCase()));
  for (const part of line.split(/(\s+)/)) {
    const bare = part.toLowerCase().replace(/[^a-z0-9']/g, "");
    span.append(marked.has(bare) ? el("mark", { text: part }) : part);
  }
  return span;
}

async function findMoment(q) {
  const view = $("#title-view");
  try {
    status(`searching for “${q}”…`);
    const found = await api(`/api/search/text?${new URLSearchParams({ q, k: 20 })}`);
    view.replaceChildren(el("h2", { text: `Where “${q}” is said` }),
      el("div", { class: "meta", text: `searched: ${found.searched}` }),
      el("ol", { class: "hits", "aria-label": "hits" }, ...found.hits.map((h) => el("li", {
        "data-title": h.title_id, onclick: () => openTitle(h.title_id, h.shot_index),
      }, el("div", { text: `${h.title_id} · shot ${h.shot_index} · ${clock(h.start_s)}–${clock(h.end_s)}` }),
         lineWithWords(h.line, h.words),
         el("div", { class: "tags", text: `score ${h.score.toFixed(3)} · ${explained(h)}` })))));
    status(found.hits.length ? "" : "nothing found");
  } catch (e) { status(e.message); }
}

$("#find").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("#said").value.trim();
  if (q) findMoment(q);
});

// --------------------------------------------------------------------------- start

let typing;
$("#q").addEventListener("input", (ev) => {
  clearTimeout(typing);
  typing = setTimeout(() => { state.q = ev.target.value; state.offset = 0; loadTitles(); }, 200);
});
loadTitles();
