// The search page: plain JavaScript over /api/config, /api/search, /api/thumb, /api/original.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  config: null,
  mode: "single",
  encoder: null,
  compare: new Set(),
  dataset: null,
  pageSize: 12,
  shown: 12, // results asked for; "more" raises it by one page
  query: null, // {kind: "text"|"hash"|"image", text, hash, name, label, file, url}
  seq: 0, // the latest search; an older answer arriving late is dropped
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function banner(message, kind = "error") {
  const box = $("#banner");
  if (!message) { box.hidden = true; box.textContent = ""; return; }
  box.className = kind;
  box.textContent = message;
  box.hidden = false;
}

const DOWN = "The search server is not answering (is `python app.py serve` still running?). Start it again, then reload this page.";

async function getJSON(url, options) {
  let res;
  try {
    res = await fetch(url, options);
  } catch (err) {
    throw new Error(DOWN);
  }
  let body = null;
  try { body = await res.json(); } catch (err) { /* not JSON: the status says enough */ }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

// ------------------------------------------------------------------ set-up

async function init() {
  try {
    state.config = await getJSON("/api/config");
  } catch (err) {
    banner(err.message);
    return;
  }
  const cfg = state.config;
  const params = new URLSearchParams(location.search);
  state.pageSize = state.shown = cfg.top_k;
  const names = cfg.encoders.map((e) => e.name);

  const sizes = [...new Set([8, 12, 24, 48, cfg.top_k])].sort((a, b) => a - b);
  $("#k").replaceChildren(...sizes.map((n) => el("option", { value: n, selected: n === cfg.top_k }, String(n))));
  $("#dataset").replaceChildren(...cfg.datasets.map((d) => el("option", { value: d }, d)));
  state.dataset = params.get("dataset") && cfg.datasets.includes(params.get("dataset")) ? params.get("dataset") : cfg.default_dataset;
  if (state.dataset) $("#dataset").value = state.dataset;
  $("#encoder").replaceChildren(...cfg.encoders.map((e) => el("option", { value: e.name }, e.name + (e.text ? " (text + image)" : ""))));
  $("#compare-set").replaceChildren(...cfg.encoders.map((e) =>
    el("label", {}, el("input", { type: "checkbox", value: e.name, checked: true, onchange: onCompareSet }), " ", e.name)));
  state.compare = new Set(names);

  const wanted = params.get("encoder");
  state.encoder = names[0];
  if (wanted && !names.includes(wanted)) {
    banner(`Unknown encoder '${wanted}': this server serves ${names.join(", ")}.`);
  } else if (wanted) {
    state.encoder = wanted;
  }
  $("#encoder").value = state.encoder;
  if (params.get("compare") !== null) setMode("compare");

  $("#query-form").addEventListener("submit", onText);
  $("#file").addEventListener("change", (ev) => { if (ev.target.files[0]) searchImage(ev.target.files[0]); ev.target.value = ""; });
  $("#dataset").addEventListener("change", (ev) => { state.dataset = ev.target.value; refresh(); });
  $("#encoder").addEventListener("change", (ev) => { state.encoder = ev.target.value; setMode("single"); });
  $("#k").addEventListener("change", (ev) => { state.pageSize = Number(ev.target.value); refresh(); });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", (ev) => setMode(ev.target.value));
  setUpDrop();
  if (!cfg.datasets.length) {
    banner("Nothing is indexed yet: run `python app.py index --data FOLDER --encoder NAME` first, then reload this page.", "info");
  }
  describeSelection();
  if (params.get("q")) { $("#text").value = params.get("q"); onText(new Event("submit")); }
}

function activeEncoders() {
  if (state.mode === "single") return [state.encoder];
  return state.config.encoders.map((e) => e.name).filter((n) => state.compare.has(n));
}

function setMode(mode) {
  state.mode = mode;
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.checked = radio.value === mode;
  document.body.classList.toggle("comparing", mode === "compare");
  refresh();
}

function onCompareSet(ev) {
  if (ev.target.checked) state.compare.add(ev.target.value); else state.compare.delete(ev.target.value);
  if (state.mode === "compare") refresh();
}

// Re-run the current query with the new settings, or describe what would be searched.
function refresh() {
  describeSelection();
  if (state.query) run(state.query);
}

function describeSelection() {
  const encs = activeEncoders().map((n) => state.config.encoders.find((e) => e.name === n));
  const text = encs.filter((e) => e.text).map((e) => e.name);
  $("#text").placeholder = text.length ? `Describe an image (${text.join(", ")})…`
    : `${encs.map((e) => e.name).join(", ") || "this encoder"} cannot embed text: upload or drop an image`;
  if (state.query) return;
  const empty = encs.filter((e) => !state.dataset || !e.collections[state.dataset] || !e.collections[state.dataset].count);
  const hint = $("#hint") || el("p", { class: "hint", id: "hint" });
  hint.textContent = empty.length
    ? empty.map((e) => `Nothing indexed with ${e.name}${state.dataset ? ` in '${state.dataset}'` : ""} yet: run \`python app.py index --encoder ${e.name}\` first.`).join(" ")
    : "Type a description, upload or drop an image, then click any result for “more like this”.";
  $("#results").replaceChildren(hint);
}

// ------------------------------------------------------------------ queries

function onText(ev) {
  ev.preventDefault();
  const text = $("#text").value.trim();
  if (!text) { banner("Type something to search for, or upload an image.", "info"); return; }
  run({ kind: "text", text });
}

function searchImage(file) {
  $("#text").value = "";
  if (state.query && state.query.url) URL.revokeObjectURL(state.query.url);
  run({ kind: "image", file, name: file.name, url: URL.createObjectURL(file) });
}

function moreLikeThis(match) {
  $("#text").value = "";
  run({ kind: "hash", hash: match.hash, name: match.name, label: match.label });
}

async function run(query, more = false) {
  if (!state.dataset) { banner("Nothing is indexed yet: run `python app.py index` first.", "info"); return; }
  const encoders = activeEncoders();
  if (!encoders.length) { banner("Tick at least one encoder to compare.", "info"); return; }
  state.query = query;
  state.shown = more ? state.shown + state.pageSize : state.pageSize;
  const form = new FormData();
  form.set("encoders", encoders.join(","));
  form.set("dataset", state.dataset);
  form.set("k", String(state.shown));
  if (query.kind === "text") form.set("text", query.text);
  else if (query.kind === "hash") form.set("hash", query.hash);
  else form.set("image", query.file, query.file.name);
  showQuery(query);
  const seq = ++state.seq;
  document.body.dataset.started = String(seq); // tests wait for done === started
  document.body.classList.add("busy");
  try {
    const result = await getJSON("/api/search", { method: "POST", body: form });
    if (seq !== state.seq) return;
    banner(null);
    render(result);
  } catch (err) {
    if (seq !== state.seq) return;
    banner(err.message);
    $("#results").replaceChildren();
  } finally {
    if (seq === state.seq) {
      document.body.classList.remove("busy");
      document.body.dataset.done = String(seq);
    }
  }
}

function showQuery(query) {
  const panel = $("#query-panel");
  let what;
  if (query.kind === "text") {
    what = [el("span", { class: "q-label" }, "Text"), el("q", { class: "q-text" }, query.text)];
  } else {
    // An upload is previewed only once the normalizer has accepted it (render): the browser
    // should not be the one to decode a decompression bomb.
    const src = query.kind === "hash" ? `/api/thumb/${query.hash}?s=256` : null;
    what = [
      // A format this browser cannot show (HEIC outside Safari) hides the preview, not the search.
      el("img", { src, alt: query.name || "query image", class: "q-img", hidden: !src,
        onerror: (ev) => { ev.target.hidden = true; } }),
      el("span", { class: "q-label" }, query.kind === "hash" ? "More like this" : "Uploaded image"),
      el("span", { class: "q-name" }, query.name || ""),
      query.label ? el("span", { class: "label" }, query.label) : null,
    ];
  }
  panel.replaceChildren(...what.filter(Boolean), el("span", { class: "q-busy" }, "searching…"));
  panel.hidden = false;
}

// ------------------------------------------------------------------ results

function render(result) {
  const preview = $("#query-panel .q-img");
  if (state.query.kind === "image" && result.columns.some((c) => c.state === "ok")) {
    preview.src = state.query.url;
    preview.hidden = false;
  }
  const box = el("div", { class: "columns", style: `--cols:${result.columns.length}` });
  for (const col of result.columns) box.append(renderColumn(col, result));
  $("#results").replaceChildren(box);
}

function fmt(score) { return score.toFixed(3); }

function renderColumn(col, result) {
  const thr = col.threshold;
  const head = el("header", {},
    el("h2", {}, col.encoder),
    el("div", { class: "sub", title: col.model }, col.model),
    el("div", { class: "sub" }, `${col.collection} · ${col.count} image${col.count === 1 ? "" : "s"}`),
    col.random_weights ? el("div", { class: "warn" }, "tiny random model: its scores mean nothing") : null,
    thr ? el("div", { class: "threshold", title: `from ${thr.report}` }, col.threshold_applies
      ? `suggested threshold ${fmt(thr.value)} (compare report; precision ${fmt(thr.precision)}, recall ${fmt(thr.recall)}): results below it are dimmed`
      : `suggested threshold ${fmt(thr.value)} (compare report) is for image queries: not applied to text`) : null,
  );
  const section = el("section", { class: `column state-${col.state}`, dataset: { encoder: col.encoder } }, head);
  if (col.error) {
    section.append(el("p", { class: `message ${col.state}` }, col.error));
    return section;
  }
  if (!col.matches.length) {
    section.append(el("p", { class: "message" }, "No results."));
    return section;
  }
  const grid = el("ol", { class: "grid" });
  let cut = false;
  col.matches.forEach((m, i) => {
    if (m.below && !cut) {
      cut = true;
      grid.append(el("li", { class: "cut" }, `below ${fmt(thr.value)}`));
    }
    grid.append(renderCard(m, i + 1, result));
  });
  section.append(grid);
  if (col.has_more) {
    section.append(el("button", { class: "more", type: "button", onclick: () => run(state.query, true) },
      `More results (showing ${col.matches.length})`));
  }
  return section;
}

function renderCard(m, rank, result) {
  const size = result.columns.length > 1 ? 128 : 256; // the page shows them at most ~150 px wide
  const ratio = m.width && m.height ? `${m.width} / ${m.height}` : "1";
  return el("li", {
      class: `card${m.below ? " below" : ""}`,
      dataset: { name: m.name, hash: m.hash, score: String(m.score), label: m.label || "" },
      title: `${m.path}\n${m.width}×${m.height} · score ${m.score.toFixed(4)}${m.below ? " (below the suggested threshold)" : ""}\nclick: more like this`,
    },
    el("button", { class: "thumb", type: "button", "aria-label": `more like ${m.name}`, onclick: () => moreLikeThis(m) },
      el("img", { src: `/api/thumb/${m.hash}?s=${size}`, alt: m.name, style: `aspect-ratio:${ratio}`,
        // e.g. a remote gateway's files are not on this machine: say so instead of a broken icon
        onerror: (ev) => ev.target.replaceWith(el("span", { class: "noimg" }, "no preview")) })),
    el("div", { class: "meta" },
      el("span", { class: "rank" }, `#${rank}`),
      el("span", { class: "score" }, fmt(m.score)),
      el("a", { class: "name", href: `/api/original/${m.hash}`, target: "_blank", rel: "noopener", title: "open the original" }, m.name),
      m.label ? el("span", { class: "label" }, m.label) : null),
  );
}

// ------------------------------------------------------------------ drag and drop

function setUpDrop() {
  const overlay = $("#drop");
  let depth = 0;
  const hasFile = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (ev) => { if (hasFile(ev)) { depth++; overlay.hidden = false; } });
  window.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; overlay.hidden = true; } });
  window.addEventListener("dragover", (ev) => { if (hasFile(ev)) ev.preventDefault(); });
  window.addEventListener("drop", (ev) => {
    if (!hasFile(ev)) return;
    ev.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const file = ev.dataTransfer.files[0];
    if (file) searchImage(file);
  });
}

init();
