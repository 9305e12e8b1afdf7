// The playground: list the models, a form from the chosen model's input schema (a text box for a text model),
// predict (optionally ?explain=true) and draw the answer: label, probability bars or the value, attributions;
// or run a whole file as a batch job (POST /v1/models/{model}/jobs, the presigned upload, GET /v1/jobs/{id}).
"use strict";

const $ = selector => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
let settings = null;
let current = null;  // {name, manifest, text} of the model the form is for

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// a text model's spec is its one text feature: the model takes token ids (integers), not float32 features
function isTextModel(manifest) {
  const schema = manifest.input_schema;
  return schema.length === 1 && schema[0].type === "string" && !String(manifest.model_input.dtype).startsWith("float");
}

async function loadModels() {
  clearError($("#error"));
  const select = $("#model");
  try {
    const {models} = await callApi(settings, "GET", "/v1/models");
    select.replaceChildren(el("option", {value: ""}, models.length ? "(choose a model)" : "(no models published)"),
      ...models.map(m => el("option", {value: m.name}, `${m.name} (latest ${m.latest_version ?? "-"}` +
        `${Object.keys(m.aliases || {}).length ? ", " + Object.entries(m.aliases).map(([a, v]) => `${a} -> ${v}`).join(", ") : ""})`)));
    select.disabled = models.length === 0;
    const remembered = localStorage.getItem(SETTINGS_KEY + ".model");
    if (current && models.some(m => m.name === current.name)) select.value = current.name;  // keep what was typed
    else if (models.some(m => m.name === remembered)) { select.value = remembered; await loadModel(remembered); }
    else if (models.length === 1) { select.value = models[0].name; await loadModel(models[0].name); }
  } catch (err) {
    showError($("#error"), err);
  }
}

async function loadModel(name) {
  clearError($("#error"));
  $("#result").hidden = true;
  $("#input-section").hidden = true;
  $("#job-section").hidden = true;
  current = null;
  if (!name) return;
  localStorage.setItem(SETTINGS_KEY + ".model", name);
  try {
    const info = await callApi(settings, "GET", `/v1/models/${encodeURIComponent(name)}`);
    if (!info.manifest) throw new ApiError(0, {code: "no_version", message: `model ${name} has no version to serve yet`}, "");
    current = {name, manifest: info.manifest, text: isTextModel(info.manifest)};
    const m = info.manifest;
    $("#model-info").textContent = `version ${m.version} - ${m.task}` +
      (m.labels.length ? ` over ${m.labels.join(", ")}` : "") + (m.target ? ` - predicts ${m.target}` : "") +
      (Object.keys(m.metrics).length ? " - holdout " + Object.entries(m.metrics).slice(0, 3)
        .map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ") : "");
    renderForm(current);
    $("#input-section").hidden = false;
    $("#job-section").hidden = false;
  } catch (err) {
    showError($("#error"), err);
  }
}

// a typical value to start from: the training mean or most frequent value (manifest.baseline), if recorded
function typicalValue(manifest, field) {
  const stats = ((manifest.baseline || {}).features || {})[field.name] || {};
  if (field.type === "number" && Number.isFinite(stats.mean)) return String(Number(stats.mean.toPrecision(4)));
  const freq = stats.frequencies || {};
  const top = Object.keys(freq).sort((a, b) => freq[b] - freq[a] || (a < b ? -1 : 1))[0];
  return top ?? "";
}

function choices(field) {  // a categorical field's description lists its categories unless there are too many
  const m = /^one of: (.*)$/.exec(field.description || "");
  return m && !m[1].endsWith(" ...") ? m[1].split(", ") : null;
}

function renderForm({manifest, text}) {
  const form = $("#record-form");
  form.replaceChildren();
  for (const field of manifest.input_schema) {
    const id = `field-${field.name}`;
    const typical = typicalValue(manifest, field);
    let input;
    const options = field.type === "boolean" ? ["true", "false"] : choices(field);
    if (text) {
      input = el("textarea", {id, name: field.name, rows: 5, placeholder: "the text to classify"});
    } else if (options) {
      input = el("select", {id, name: field.name},
        el("option", {value: ""}, field.required ? "(choose)" : "(leave out)"),
        options.map(o => el("option", {value: o}, o)));
      input.value = typical;
    } else {
      input = el("input", {id, name: field.name, type: field.type === "number" ? "number" : "text",
                           step: field.type === "number" ? "any" : undefined, value: typical});
    }
    input.dataset.type = field.type;
    form.append(el("div", {class: "field"},
      el("label", {for: id}, field.name, field.required ? el("span", {class: "required", title: "required"}, " *") : null,
        el("span", {class: "type"}, ` ${field.type}`)),
      input,
      field.description && !options ? el("small", {class: "muted"}, field.description) : null,
      el("small", {class: "field-error", "data-error-for": field.name})));
  }
}

// the form as one record: empty fields are left out (the API names the required ones missing)
function formRecord() {
  const record = {};
  for (const input of $("#record-form").querySelectorAll("[name]")) {
    const raw = input.value;
    if (raw.trim() === "") continue;
    const type = input.dataset.type;
    record[input.name] = type === "number" && Number.isFinite(Number(raw)) ? Number(raw)
      : type === "boolean" ? raw === "true" : raw;
  }
  return record;
}

async function predict(explain) {
  if (!current) return;
  clearError($("#error"));
  for (const node of document.querySelectorAll(".field-error")) node.textContent = "";
  const buttons = [$("#predict"), $("#explain")];
  buttons.forEach(b => b.setAttribute("aria-busy", "true"));
  try {
    const path = `/v1/models/${encodeURIComponent(current.name)}/predict${explain ? "?explain=true" : ""}`;
    const answer = await callApi(settings, "POST", path, {records: [formRecord()]});
    showPrediction(answer);
  } catch (err) {
    $("#result").hidden = true;
    showError($("#error"), err);
    markFields(err);
  } finally {
    buttons.forEach(b => b.removeAttribute("aria-busy"));
  }
}

function markFields(err) {  // details naming a field: the reason next to its input too
  for (const d of (err && err.details) || []) {
    const slot = d && d.field ? document.querySelector(`[data-error-for="${CSS.escape(d.field)}"]`) : null;
    if (slot) slot.textContent = d.reason || detailText(d);
  }
}

function showPrediction(answer) {
  const p = answer.predictions[0];
  $("#result").hidden = false;
  $("#raw").textContent = JSON.stringify(answer, null, 2);
  $("#meta").textContent = ` - ${answer.model} version ${answer.version}` + (answer.alias ? ` (${answer.alias})` : "") +
    (answer.variant && answer.variant !== "float" ? `, ${answer.variant}` : "");
  const regression = p.value !== undefined && p.value !== null;
  $("#label-kind").textContent = regression ? "value" : "label";
  $("#label").textContent = regression ? String(p.value) : p.label;
  $("#chart").replaceChildren(p.probabilities ? barChart(Object.entries(p.probabilities), p.label, 1) : "");
  const ex = p.explanation;
  $("#attributions").hidden = !ex;
  if (ex) {
    $("#attribution-note").textContent = `${ex.method} against the ${ex.baseline} baseline: output ` +
      `${ex.output.toFixed(4)}${ex.target ? ` (probability of ${ex.target})` : ""}, ` +
      `${ex.baseline_output.toFixed(4)} with every field at its baseline; each bar is what its field adds`;
    $("#attribution-chart").replaceChildren(divergingChart(Object.entries(ex.attributions)));
  }
}

const BAR = {left: 150, width: 360, height: 22, gap: 6, right: 70};

// horizontal bars, 0..max; the predicted class highlighted
function barChart(entries, highlight, max) {
  const h = entries.length * (BAR.height + BAR.gap);
  const chart = svg("svg", {class: "bars", id: "probabilities", width: BAR.left + BAR.width + BAR.right, height: h,
                            role: "img", "aria-label": "probability per class"});
  entries.forEach(([name, value], i) => {
    const y = i * (BAR.height + BAR.gap);
    const g = svg("g", {class: name === highlight ? "bar top" : "bar", "data-label": name});
    g.append(svg("text", {x: BAR.left - 8, y: y + BAR.height * 0.7, "text-anchor": "end"}, name),
      svg("rect", {x: BAR.left, y, width: BAR.width, height: BAR.height, class: "track"}),
      svg("rect", {x: BAR.left, y, width: Math.max(0, BAR.width * value / max), height: BAR.height, class: "fill"}),
      svg("text", {x: BAR.left + BAR.width + 8, y: y + BAR.height * 0.7}, `${(100 * value).toFixed(1)}%`));
    chart.append(g);
  });
  return chart;
}

// bars left (negative) or right (positive) of a middle axis, largest effect first
function divergingChart(entries) {
  entries.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const max = Math.max(1e-9, ...entries.map(([, v]) => Math.abs(v)));
  const mid = BAR.left + BAR.width / 2, h = entries.length * (BAR.height + BAR.gap);
  const chart = svg("svg", {class: "bars diverging", width: BAR.left + BAR.width + BAR.right, height: h,
                            role: "img", "aria-label": "attribution per field"});
  chart.append(svg("line", {x1: mid, x2: mid, y1: 0, y2: h, class: "axis"}));
  entries.forEach(([name, value], i) => {
    const y = i * (BAR.height + BAR.gap), w = (BAR.width / 2) * Math.abs(value) / max;
    const g = svg("g", {class: value < 0 ? "bar negative" : "bar positive", "data-field": name});
    g.append(svg("text", {x: BAR.left - 8, y: y + BAR.height * 0.7, "text-anchor": "end"}, name),
      svg("rect", {x: value < 0 ? mid - w : mid, y, width: w, height: BAR.height, class: "fill"}),
      svg("text", {x: BAR.left + BAR.width + 8, y: y + BAR.height * 0.7}, (value >= 0 ? "+" : "") + value.toFixed(4)));
    chart.append(g);
  });
  return chart;
}

// a file as a batch job: create it, post the file to S3 with the presigned form, follow it until it ends
async function runJob() {
  const file = $("#job-file").files[0];
  if (!current || !file) return;
  clearError($("#error"));
  const button = $("#run-job");
  button.setAttribute("aria-busy", "true");
  try {
    const name = file.name.toLowerCase();
    const format = name.replace(/\.gz$/, "").endsWith(".jsonl") ? "jsonl" : "csv";
    const job = await callApi(settings, "POST", `/v1/models/${encodeURIComponent(current.name)}/jobs`,
                              {format, gzip: name.endsWith(".gz")});
    if (file.size > job.upload.max_bytes) {
      throw new ApiError(0, {code: "file_too_large", message: `the file has ${file.size} bytes; a job takes at most ` +
        `${job.upload.max_bytes}`}, "");
    }
    showJob({job_id: job.job_id, status: "uploading"});
    const form = new FormData();
    for (const [key, value] of Object.entries(job.upload.fields)) form.append(key, value);
    form.append("file", file);  // last: S3 ignores the fields after it
    const uploaded = await fetch(job.upload.url, {method: "POST", body: form});
    if (!uploaded.ok) {
      const code = /<Code>([^<]*)<\/Code>/.exec(await uploaded.text());
      throw new ApiError(uploaded.status, {code: code ? code[1] : "upload_refused", message: "S3 refused the upload"},
                         job.upload.url);
    }
    const deadline = Date.now() + 15 * 60 * 1000;  // a batch function runs for at most 15 minutes
    let status;
    do {
      await new Promise(resolve => setTimeout(resolve, 1000));
      status = await callApi(settings, "GET", `/v1/jobs/${job.job_id}`);
      showJob(status);
    } while (["waiting_for_upload", "running"].includes(status.status) && Date.now() < deadline);
    if (status.error) throw new ApiError(0, status.error, "");
  } catch (err) {
    showError($("#error"), err);
  } finally {
    button.removeAttribute("aria-busy");
  }
}

function showJob(job) {
  const box = $("#job-status");
  box.dataset.status = job.status;
  const c = job.counts;
  box.textContent = `job ${job.job_id}: ${job.status.replaceAll("_", " ")}` +
    (job.progress ? ` · ${progressText(job.progress)}` : "") + (c ? ` - ${c.rows} rows: ${c.predicted} ` +
    `predicted, ${c.rejected} rejected, ${c.blank} blank (version ${job.version})` : "");
  const outputs = job.outputs || {};
  $("#job-outputs").replaceChildren(...Object.entries(outputs).map(([kind, link]) =>
    el("li", {}, el("a", {href: link.url, "data-output": kind}, `${kind} (JSON lines)`))));
}

// a running job's progress (JobProgress) in plain words: "distributed · predicting · 3 of 20 shards · 41,000 rows
// · 1.2 MB of 9.8 MB (12%)"; the shard counts exist only for a large file once planned, until its work area goes
function progressText(p) {
  const words = [p.path === "distributed" ? "distributed" : "single function", p.stage];
  if (!Number.isInteger(p.shards_total)) return [...words, `${byteSize(p.uploaded_bytes)} file`].join(" · ");
  // floored: 100% only once every byte is predicted
  const share = p.uploaded_bytes > 0 ? Math.floor(100 * p.bytes_done / p.uploaded_bytes) : 100;
  return [...words, `${p.shards_done} of ${p.shards_total} shards`, `${p.rows_done.toLocaleString("en-US")} rows`,
    `${byteSize(p.bytes_done)} of ${byteSize(p.uploaded_bytes)} (${share}%)`].join(" · ");
}

// bytes in SI units with one decimal (999 B, 1.2 kB, 9.8 MB); a size that rounds to 1000 takes the next unit
function byteSize(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let n = bytes, i = 0;
  while (i < units.length - 1 && Number(n.toFixed(1)) >= 1000) { n /= 1000; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

async function main() {
  settings = await loadSettings();
  bindSettingsForm(settings, () => loadModels());
  $("#connect").addEventListener("click", loadModels);
  $("#model").addEventListener("change", e => loadModel(e.target.value));
  $("#predict").addEventListener("click", () => predict(false));
  $("#explain").addEventListener("click", () => predict(true));
  $("#run-job").addEventListener("click", runJob);
  $("#record-form").addEventListener("submit", e => { e.preventDefault(); predict(false); });
  await loadModels();
  document.body.dataset.ready = "true";  // for tests and screenshots: the first load is over
}

document.addEventListener("DOMContentLoaded", main);
