// What the playground and the API docs page share: where the API is, how to authenticate, one request helper,
// and the error box. Plain browser JavaScript (no build step, no dependencies); loaded before each page's script.
"use strict";

const SETTINGS_KEY = "maas.playground.settings";
// a page opened from a file or hosted without config.json starts on the local gateway (maas-demo's port)
const FALLBACK = {apiBase: "http://127.0.0.1:8080", authKind: "x-api-key", credential: ""};

// The settings in use: what this browser remembered, else config.json next to the page (the local gateway
// writes one: this origin's API and its key), else FALLBACK.
async function loadSettings() {
  let defaults = FALLBACK;
  try {
    const r = await fetch("config.json", {cache: "no-store"});
    if (r.ok) defaults = {...FALLBACK, ...(await r.json())};
  } catch (e) { /* no config.json (file:// or a static host): keep FALLBACK */ }
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}"); } catch (e) { saved = {}; }
  return {...defaults, ...saved};
}

function saveSettings(settings) {
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
}

// "" means the API on this page's origin (the local gateway serves both)
function apiBaseUrl(settings) {
  return (settings.apiBase || "").trim().replace(/\/+$/, "") || window.location.origin;
}

class ApiError extends Error {
  constructor(status, error, url) {
    super(error.message || "request failed");
    this.status = status;           // 0: no HTTP answer reached the page
    this.code = error.code || "error";
    this.details = Array.isArray(error.details) ? error.details : [];
    this.requestId = error.request_id || null;
    this.url = url;
  }
}

// One call to the API: the parsed JSON of a 2xx, else an ApiError in the API's own words
// ({"error": {"code", "message", "details", "request_id"}}).
async function callApi(settings, method, path, body) {
  const url = apiBaseUrl(settings) + path;
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const credential = (settings.credential || "").trim();
  if (credential) headers[settings.authKind === "cognito" ? "Authorization" : "x-api-key"] = credential;
  pending(+1);
  try {
    return await send(url, method, headers, body);
  } finally {
    pending(-1);
  }
}

// how many calls are under way, on <html data-pending>: tests (and CSS) can wait for the page to settle
function pending(delta) {
  const root = document.documentElement;
  root.dataset.pending = String(Number(root.dataset.pending || 0) + delta);
}

async function send(url, method, headers, body) {
  let response;
  try {
    response = await fetch(url, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    // fetch hides why (by design): unreachable, or the browser's CORS check refused the answer
    throw new ApiError(0, {code: "network_error", message: `no answer from ${url} that this page may read: the API ` +
      `is not running there, or it does not allow this page's origin (${window.location.origin}) - on AWS the ` +
      `stack's AllowedOrigins must name it; the browser console says which (${e.message})`}, url);
  }
  const requestId = response.headers.get("x-amzn-RequestId");
  let json = null;
  try { json = await response.json(); } catch (e) { json = null; }
  if (response.ok && json !== null) return json;
  const error = json && typeof json.error === "object" && json.error !== null ? json.error
    // API Gateway's bare answers ({"message": "..."}) and non-JSON bodies
    : {code: response.ok ? "bad_response" : `http_${response.status}`,
       message: (json && json.message) || `HTTP ${response.status} ${response.statusText} without a JSON error body`};
  if (!error.request_id && requestId) error.request_id = requestId;
  throw new ApiError(response.status, error, url);
}

// element helper: el("p", {class: "x"}, "text", child...)
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function detailText(detail) {
  if (typeof detail !== "object" || detail === null) return String(detail);
  const where = [detail.index !== undefined ? `record ${detail.index}` : null, detail.field].filter(v => v !== undefined && v !== null);
  const rest = Object.entries(detail).filter(([k]) => !["index", "field", "reason"].includes(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [where.join(" / "), detail.reason, rest.join(", ")].filter(Boolean).join(": ");
}

// The error box: status, code and message as the API said them, each detail, and the request id to quote
function showError(box, err) {
  box.replaceChildren();
  box.hidden = false;
  if (!(err instanceof ApiError)) err = new ApiError(0, {code: "page_error", message: String(err)}, "");
  box.append(
    el("p", {class: "error-head"}, el("strong", {}, err.status ? `HTTP ${err.status} ` : ""), el("code", {class: "error-code"}, err.code)),
    el("p", {class: "error-message"}, err.message),
    err.details.length ? el("ul", {class: "error-details"}, err.details.map(d => el("li", {}, detailText(d)))) : null,
    err.requestId ? el("p", {class: "request-id"}, "request id ", el("code", {}, err.requestId)) : null,
  );
}

function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
}

// The connection inputs a page has (#api-base, #auth-kind, #credential): filled from the settings, and every
// change remembered in this browser and passed to onChange.
function bindSettingsForm(settings, onChange) {
  const fields = {apiBase: "#api-base", authKind: "#auth-kind", credential: "#credential"};
  for (const [key, selector] of Object.entries(fields)) {
    const input = document.querySelector(selector);
    if (!input) continue;
    input.value = settings[key] || "";
    input.addEventListener("change", () => {
      settings[key] = input.value;
      saveSettings(settings);
      if (onChange) onChange(key);
    });
  }
  document.querySelector("#api-base").placeholder = `${window.location.origin} (this page's origin)`;
}
