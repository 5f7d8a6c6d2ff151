// The playground: one tab per model kind, every request through the public API (api.js).
import { api, blob, events, onKey, setUpKeyForm } from "./api.js";

const $ = (selector, root = document) => root.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

// Run `work` for a form: its error line shows the API's message on failure, its button waits meanwhile.
async function guarded(form, work) {
  const error = $(".error", form);
  const button = $("button[type=submit]", form);
  error.hidden = true;
  if (button) button.disabled = true;
  try {
    await work();
  } catch (exc) {
    error.textContent = exc.message || String(exc);
    error.hidden = false;
  } finally {
    if (button) button.disabled = false;
  }
}

const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const fmt = (x, digits = 3) => Number(x).toFixed(digits);

// ---- tabs ---------------------------------------------------------------------------------------------

function setUpTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
    history.replaceState(null, "", `#${tab.id.slice(4)}`);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) select(tabs[(i + step + tabs.length) % tabs.length]);
      else if (event.key === "Home") select(tabs[0]);
      else if (event.key === "End") select(tabs[tabs.length - 1]);
      else return;
      event.preventDefault();
    });
  });
  const start = document.getElementById(`tab-${location.hash.slice(1)}`);
  if (start) select(start);
}

// ---- models -------------------------------------------------------------------------------------------

let models = [];

function modelLabel(m) {
  if (m.kind === "translator") return `${m.name} (${m.source} → ${m.target})`;
  if (m.kind === "classifier" && m.task) return `${m.name} (${m.task})`;
  if (m.kind === "vectors" && m.subwords) return `${m.name} (subwords)`;
  return m.name;
}

async function loadModels() {
  const error = $("#global-error");
  try {
    models = (await api("/v1/models")).models;
    error.hidden = true;
  } catch (exc) {
    error.textContent = `Cannot list the models: ${exc.message}`;
    error.hidden = false;
    return;
  }
  for (const picker of document.querySelectorAll(".model-picker")) {
    const kind = picker.dataset.kind;
    const chosen = picker.value;
    const fit = models.filter((m) => kind === "*" || m.kind === kind);
    picker.replaceChildren(...fit.map((m) => el("option", { value: m.name, text: modelLabel(m) })));
    if (fit.some((m) => m.name === chosen)) picker.value = chosen;
    picker.dispatchEvent(new Event("change"));
  }
  for (const panel of document.querySelectorAll("[role=tabpanel]")) {
    const kind = panel.dataset.kind;
    const none = !models.some((m) => kind === "*" || m.kind === kind);
    $(".empty", panel).hidden = !none;
    for (const part of panel.querySelectorAll(".needs-model")) part.hidden = none;
  }
}

const modelOf = (picker) => models.find((m) => m.name === picker.value);

// ---- vectors ------------------------------------------------------------------------------------------

// The first two principal components of the rows of `rows` (centred), by power iteration: 2-D points.
function pca2(rows) {
  const n = rows.length;
  const d = rows[0].length;
  const mean = new Array(d).fill(0);
  for (const r of rows) r.forEach((x, j) => (mean[j] += x / n));
  const X = rows.map((r) => r.map((x, j) => x - mean[j]));
  const project = (v) => X.map((r) => r.reduce((s, x, j) => s + x * v[j], 0));
  const components = [];
  for (let c = 0; c < 2; c++) {
    let v = Array.from({ length: d }, (_, j) => Math.cos(j * 1.7 + c)); // fixed start: the same map each time
    for (let it = 0; it < 200; it++) {
      const xv = project(v);
      let w = new Array(d).fill(0);
      X.forEach((r, i) => r.forEach((x, j) => (w[j] += x * xv[i])));
      for (const u of components) {
        const dot = w.reduce((s, x, j) => s + x * u[j], 0);
        w = w.map((x, j) => x - dot * u[j]);
      }
      const norm = Math.hypot(...w) || 1;
      v = w.map((x) => x / norm);
    }
    components.push(v);
  }
  const xs = project(components[0]);
  const ys = project(components[1]);
  return xs.map((x, i) => [x, ys[i]]);
}

// Where a point's label goes: right of it (left near the right edge), moved up or down off labels placed before.
function placeLabel(x, y, text, placed, width) {
  const w = 7 * text.length;
  const left = x + 9 + w > width;
  const x0 = left ? x - 9 - w : x + 9;
  for (const dy of [0, 13, -13, 26, -26, 39, -39]) {
    const box = [x0, y + dy - 9, x0 + w, y + dy + 4];
    if (!placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) {
      placed.push(box);
      return { x: left ? x - 9 : x + 9, y: y + 4 + dy, anchor: left ? "end" : "start" };
    }
  }
  return { x: left ? x - 9 : x + 9, y: y + 4, anchor: left ? "end" : "start" };
}

function drawMap(svg, words, points, sources, onPick) {
  const W = 480, H = 360, pad = 24;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const sy = (y) => H - pad - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const placed = points.map((p) => [sx(p[0]) - 6, sy(p[1]) - 6, sx(p[0]) + 6, sy(p[1]) + 6]); // the dots
  svg.replaceChildren();
  words.forEach((word, i) => {
    const [x, y] = [sx(points[i][0]), sy(points[i][1])];
    const subword = sources[i] === "subwords";
    const cls = ["point", i === 0 ? "query" : "", subword ? "subword" : ""].join(" ").trim();
    const label = `${word}${subword ? " (built from subwords)" : ""}${i === 0 ? "" : ": walk to it"}`;
    const text = subword ? `${word}*` : word;
    const at = placeLabel(x, y, text, placed, W);
    const g = el("svg:g", { class: cls, tabindex: "0", role: "button", "aria-label": label, "data-word": word });
    g.append(el("svg:title", { text: label }),
      el("svg:circle", { cx: fmt(x, 1), cy: fmt(y, 1), r: i === 0 ? 7 : 5 }),
      el("svg:text", { x: fmt(at.x, 1), y: fmt(at.y, 1), "text-anchor": at.anchor, text }));
    g.addEventListener("click", () => onPick(word));
    g.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onPick(word);
      }
    });
    svg.append(g);
  });
}

function setUpVectors() {
  const picker = $("#vec-model");
  const form = $("#neighbors-form");
  const neighbours = () => guarded(form, async () => {
    const word = $("#nb-word").value.trim();
    const approximate = $("#nb-approx").checked;
    const model = picker.value;
    const found = await api("/v1/neighbors", { model, word, topn: Number($("#nb-topn").value) || 10, approximate });
    const table = $("#nb-table");
    $(".query", table).textContent = `${word}${found.approximate ? " (approximate)" : ""}`;
    $("tbody", table).replaceChildren(...found.neighbors.map((n) => el("tr", {},
      el("td", {}, el("button", { type: "button", class: "link", text: n.word })), el("td", { text: fmt(n.score) }))));
    for (const b of table.querySelectorAll("button.link")) b.addEventListener("click", () => walk(b.textContent));
    table.hidden = false;
    // The map: the query and its neighbours, their vectors, PCA to 2-D here.
    const words = [word, ...found.neighbors.map((n) => n.word)];
    const figure = $("#nb-map");
    if (words.length < 3) {
      figure.hidden = true;
      return;
    }
    const vecs = await api("/v1/embeddings/words", { model, words, normalize: true });
    const sources = vecs.vectors.map((v) => v.source);
    drawMap($("svg", figure), words, pca2(vecs.vectors.map((v) => v.vector)), sources, walk);
    $(".subword-key", figure).hidden = !sources.includes("subwords");
    figure.hidden = false;
  });
  const walk = (word) => {
    $("#nb-word").value = word;
    neighbours();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    neighbours();
  });

  const analogy = $("#analogy-form");
  analogy.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(analogy, async () => {
      const body = { model: picker.value, a: $("#an-a").value.trim(), b: $("#an-b").value.trim(),
        c: $("#an-c").value.trim(), method: $("#an-method").value, topn: 5 };
      const found = await api("/v1/analogy", body);
      $("#an-answers").replaceChildren(...found.answers.map((a) => el("li", {},
        el("strong", { text: a.word }), ` ${fmt(a.score)}`)));
    });
  });

  const similarity = $("#similarity-form");
  similarity.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(similarity, async () => {
      const found = await api("/v1/similarity", { model: picker.value, word1: $("#sim-1").value.trim(),
        word2: $("#sim-2").value.trim() });
      $("#sim-out").textContent = `cos(${found.word1}, ${found.word2}) = ${fmt(found.similarity)}`;
    });
  });
}

// ---- classify -----------------------------------------------------------------------------------------

// `text` with its explanation's spans highlighted: green pushes towards the label, red away; stronger, darker.
function highlighted(text, explanation) {
  const out = el("p", { class: "explained" });
  const spans = [...explanation].sort((a, b) => a.start - b.start);
  const top = Math.max(1e-9, ...spans.map((s) => Math.abs(s.score)));
  let at = 0;
  for (const s of spans) {
    if (s.start < at) continue; // overlapping spans: keep the first
    out.append(text.slice(at, s.start));
    const alpha = fmt(0.12 + 0.68 * (Math.abs(s.score) / top), 2);
    const rgb = s.score >= 0 ? "22, 163, 74" : "220, 38, 38";
    out.append(el("mark", { class: s.score >= 0 ? "pos" : "neg", style: `background: rgba(${rgb}, ${alpha})`,
      title: `${s.token}: ${fmt(s.score)}`, text: text.slice(s.start, s.end) }));
    at = s.end;
  }
  out.append(text.slice(at));
  return out;
}

function setUpClassify() {
  const form = $("#classify-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(form, async () => {
      const texts = lines($("#cls-texts").value);
      const model = modelOf($("#cls-model"));
      const body = { model: model.name, texts };
      if ($("#cls-explain").checked) body.explain = true;
      const path = model.task === "sentiment" ? "/v1/sentiment" : "/v1/classify";
      const out = $("#cls-results");
      out.replaceChildren();
      $("#cls-legend").hidden = true;
      const found = await api(path, body);
      $("#cls-legend").hidden = !found.results.some((r) => r.explanation);
      out.replaceChildren(...found.results.map((r, i) => {
        const card = el("article", { class: "cls-result" });
        card.append(r.explanation ? highlighted(texts[i], r.explanation) : el("p", { text: texts[i] }));
        card.append(el("p", { class: "label" }, "label: ", el("strong", { text: r.label })));
        const bars = el("dl", { class: "bars" });
        for (const [label, p] of Object.entries(r.probabilities).sort((a, b) => b[1] - a[1])) {
          bars.append(el("dt", { text: label }), el("dd", {},
            el("span", { class: `bar${label === r.label ? " top" : ""}`, style: `width: ${fmt(100 * p, 1)}%` }),
            el("span", { class: "p", text: fmt(p) })));
        }
        card.append(bars);
        return card;
      }));
    });
  });
}

// ---- translate ----------------------------------------------------------------------------------------

function heatMap(att, index) {
  const S = att.source_tokens.length;
  const grid = el("div", { class: "heat", role: "img", style: `grid-template-columns: auto repeat(${S}, 2.2rem)`,
    "aria-label": `attention of translation ${index + 1}: target tokens (rows) over source tokens (columns)` });
  grid.append(el("span", { class: "corner", text: "target ↓ / source →" }));
  for (const s of att.source_tokens) grid.append(el("span", { class: "src", title: s, text: s }));
  // Colours from the map's smallest weight (white) to its largest (dark), as an image plot does.
  const all = att.weights.flat();
  const low = Math.min(...all);
  const span = Math.max(1e-9, Math.max(...all) - low);
  att.target_tokens.forEach((t, ti) => {
    grid.append(el("span", { class: "tgt", text: t }));
    const row = att.weights[ti];
    att.source_tokens.forEach((s, si) => {
      grid.append(el("span", { class: "cell", title: `${t} ← ${s}: ${fmt(row[si])}`,
        style: `background: rgba(37, 99, 235, ${fmt((row[si] - low) / span, 3)})` }));
    });
  });
  const caption = `Attention of translation ${index + 1}: each target token (row) over the source tokens ` +
    "(columns), from the smallest weight (white) to the largest (dark); hover a cell for its value.";
  return el("figure", { class: "attention" }, el("figcaption", { text: caption }), grid);
}

function setUpTranslate() {
  const form = $("#translate-form");
  // Attention matrices come from seq2seq translators only (a Marian model answers 422 attention_not_supported).
  const picker = $("#tr-model");
  const box = $("#tr-attention");
  picker.addEventListener("change", () => {
    const model = modelOf(picker);
    box.disabled = Boolean(model && model.backend && model.backend !== "seq2seq");
    if (box.disabled) box.checked = false;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(form, async () => {
      const texts = lines($("#tr-texts").value);
      const body = { model: $("#tr-model").value, texts, beam_size: Number($("#tr-beam").value) || 1 };
      if ($("#tr-attention").checked) body.return_attention = true;
      const table = $("#tr-table");
      const maps = $("#tr-attention-maps");
      table.hidden = true;
      maps.replaceChildren();
      const found = await api("/v1/translate", body);
      $("tbody", table).replaceChildren(...found.translations.map((t, i) => el("tr", {},
        el("td", { text: texts[i] }), el("td", { text: t }))));
      table.hidden = false;
      maps.replaceChildren(...(found.attention || []).map(heatMap));
    });
  });
}

// ---- generate -----------------------------------------------------------------------------------------

function generationParameters() {
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  const p = { max_new_tokens: num("#gen-max") ?? 20, details: true };
  if ($("#gen-sample").checked) {
    p.do_sample = true;
    p.temperature = num("#gen-temperature");
    p.top_k = num("#gen-top-k");
    p.top_p = num("#gen-top-p");
  }
  p.repetition_penalty = num("#gen-rep");
  p.seed = num("#gen-seed");
  const stop = $("#gen-stop").value.split(",").map((s) => s.replaceAll("\\n", "\n")).filter((s) => s.trim());
  if (stop.length) p.stop = stop;
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
}

function setUpGenerate() {
  const form = $("#generate-form");
  const stopButton = $("#gen-stop-button");
  const status = $("#gen-status");
  const output = $("#gen-output");
  let controller = null;
  $("#gen-sample").addEventListener("change", (event) => {
    for (const input of form.querySelectorAll(".sampling")) input.disabled = !event.target.checked;
  });
  stopButton.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = $("#gen-prompt").value;
    $(".prompt", output).textContent = prompt;
    const text = $(".text", output);
    text.textContent = "";
    let tokens = 0;
    controller = new AbortController();
    stopButton.disabled = false;
    status.textContent = "generating…";
    status.dataset.state = "running";
    guarded(form, async () => {
      try {
        const body = { model: $("#gen-model").value, inputs: prompt, parameters: generationParameters() };
        for await (const data of events("/v1/generate_stream", body, controller.signal)) {
          if (data.error) throw new Error(data.error);
          text.textContent += data.token.text;
          tokens += 1;
          status.textContent = `generating… ${tokens} tokens`;
          if (data.details) {
            status.textContent = `done: ${data.details.generated_tokens} tokens, finish reason ` +
              `${data.details.finish_reason}${data.details.seed != null ? `, seed ${data.details.seed}` : ""}`;
            status.dataset.state = "done";
          }
        }
      } catch (exc) {
        if (exc.name !== "AbortError") {
          status.textContent = "";
          status.dataset.state = "failed";
          throw exc;
        }
        status.textContent = `stopped after ${tokens} tokens`;
        status.dataset.state = "stopped";
      } finally {
        stopButton.disabled = true;
        controller = null;
      }
    });
  });
}

// ---- training curves ----------------------------------------------------------------------------------

function setUpCurves() {
  const form = $("#curves-form");
  const img = $("#cur-img");
  const none = $("#cur-none");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("#cur-model").value;
    img.hidden = true;
    none.hidden = true;
    guarded(form, async () => {
      let image;
      try {
        image = await blob(`/v1/models/${encodeURIComponent(name)}/curves`);
      } catch (exc) {
        if (exc.status !== 404) throw exc;
        none.hidden = false;
        return;
      }
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(image);
      img.alt = `Training curves of ${name}`;
      img.hidden = false;
    });
  });
}

// ---- start --------------------------------------------------------------------------------------------

setUpKeyForm();
setUpTabs();
setUpVectors();
setUpClassify();
setUpTranslate();
setUpGenerate();
setUpCurves();
onKey(loadModels);
loadModels();
