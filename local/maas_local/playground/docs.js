// A readable rendering of the API's OpenAPI 3.1 document: every operation with its parameters, request body
// and responses, and every schema of components.schemas ($refs become links). No dependencies: a few hundred
// lines instead of vendoring swagger-ui (megabytes) or loading it from a CDN.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];
const REF = "#/components/schemas/";
const q = selector => document.querySelector(selector);

function refName(ref) {
  return ref.startsWith(REF) ? ref.slice(REF.length) : ref;
}

function schemaAnchor(name) {
  return `schema-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

function operationAnchor(method, path) {
  return `op-${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}`;
}

// a one-line type: string, number | null, array of Prediction, object of number, ...
function typeLabel(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.$ref) return el("a", {href: "#" + schemaAnchor(refName(schema.$ref))}, refName(schema.$ref));
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (Array.isArray(schema[key])) {
      const parts = schema[key].map(typeLabel);
      return el("span", {}, parts.flatMap((p, i) => i ? [key === "allOf" ? " & " : " | ", p] : [p]));
    }
  }
  if (schema.const !== undefined) return el("code", {}, JSON.stringify(schema.const));
  if (Array.isArray(schema.enum)) return el("span", {}, "one of ", schema.enum.map((v, i) => [i ? ", " : "", el("code", {}, JSON.stringify(v))]));
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (type === "array") return el("span", {}, "array of ", typeLabel(schema.items));
  if (type === "object" && !schema.properties && schema.additionalProperties && schema.additionalProperties !== true)
    return el("span", {}, "object of ", typeLabel(schema.additionalProperties));
  return type || (schema.properties ? "object" : "any");
}

function constraints(schema) {
  const keys = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
                "minItems", "maxItems", "format", "default"];
  const parts = keys.filter(k => schema && schema[k] !== undefined).map(k => `${k} ${JSON.stringify(schema[k])}`);
  return parts.length ? el("span", {class: "muted"}, ` (${parts.join(", ")})`) : null;
}

// an object's properties as a table (name, type, required, description); any other schema as its type line
function schemaView(schema) {
  if (!schema) return el("p", {class: "muted"}, "no schema");
  const body = [];
  body.push(el("p", {class: "type-line"}, typeLabel(schema), constraints(schema)));
  if (schema.description) body.push(el("p", {}, schema.description));
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  if (Object.keys(props).length) {
    body.push(el("table", {class: "props"},
      el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description"))),
      el("tbody", {}, Object.entries(props).map(([name, prop]) => el("tr", {},
        el("td", {}, el("code", {}, name), required.has(name) ? el("span", {class: "required", title: "required"}, " *") : null),
        el("td", {}, typeLabel(prop), constraints(prop)),
        el("td", {}, prop.description || ""))))));
    if (schema.additionalProperties === false) body.push(el("p", {class: "muted"}, "no other fields"));
  }
  if (Array.isArray(schema.examples) && schema.examples.length)
    body.push(el("details", {}, el("summary", {}, "examples"), schema.examples.map(x => el("pre", {}, JSON.stringify(x, null, 2)))));
  for (const prop of Object.values(props)) {
    if (Array.isArray(prop.examples) && prop.examples.length) {
      body.push(el("details", {}, el("summary", {}, "examples"), prop.examples.map(x => el("pre", {}, JSON.stringify(x, null, 2)))));
    }
  }
  return el("div", {class: "schema"}, body);
}

function contentView(content) {  // a named schema on one line (it is listed under Schemas), any other drawn here
  return Object.entries(content || {}).map(([type, media]) => media.schema && media.schema.$ref
    ? el("p", {class: "media"}, el("span", {class: "muted"}, `${type}: `), typeLabel(media.schema))
    : el("div", {class: "media"}, el("p", {class: "muted"}, type), schemaView(media.schema)));
}

function securityLine(doc, op) {
  const security = op.security ?? doc.security ?? [];
  if (!security.length || security.every(s => !Object.keys(s).length)) return el("p", {class: "security open"}, "open: no credential");
  const schemes = (doc.components || {}).securitySchemes || {};
  return el("p", {class: "security"}, "needs ", security.map((s, i) => [i ? " or " : "",
    Object.keys(s).map(name => {
      const scheme = schemes[name] || {};
      return el("code", {title: scheme.description || ""}, scheme.in === "header" ? `${scheme.name} header` : name);
    })]));
}

function operationView(doc, method, path, op) {
  const params = op.parameters || [];
  return el("article", {class: "operation", id: operationAnchor(method, path), "data-method": method.toUpperCase(), "data-path": path},
    el("h3", {}, el("span", {class: `method ${method}`}, method.toUpperCase()), " ", el("code", {class: "path"}, path)),
    op.summary && op.summary !== `${method.toUpperCase()} ${path}` ? el("p", {}, op.summary) : null,
    op.description ? el("p", {}, op.description) : null,
    securityLine(doc, op),
    params.length ? [el("h4", {}, "Parameters"), el("table", {class: "params"},
      el("thead", {}, el("tr", {}, ["name", "in", "type", "description"].map(h => el("th", {}, h)))),
      el("tbody", {}, params.map(p => el("tr", {},
        el("td", {}, el("code", {}, p.name), p.required ? el("span", {class: "required", title: "required"}, " *") : null),
        el("td", {}, p.in), el("td", {}, typeLabel(p.schema), constraints(p.schema)),
        el("td", {}, p.description || (p.schema || {}).description || "")))))] : null,
    op.requestBody ? [el("h4", {}, "Request body", op.requestBody.required ? el("span", {class: "required"}, " *") : null),
      contentView(op.requestBody.content)] : null,
    el("h4", {}, "Responses"),
    el("dl", {class: "responses"}, Object.entries(op.responses || {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([status, r]) => [el("dt", {class: `status s${status[0]}`}, status),
        el("dd", {}, r.description || "", contentView(r.content))])));
}

function render(doc) {
  q("#title").textContent = `${doc.info?.title || "API"} ${doc.info?.version || ""} - API reference`;
  q("#description").textContent = doc.info?.description || "";
  const schemes = Object.entries((doc.components || {}).securitySchemes || {});
  q("#security").replaceChildren(schemes.length ? el("div", {}, el("h2", {}, "Authentication"),
    el("ul", {}, schemes.map(([name, s]) => el("li", {}, el("code", {}, name), `: ${s.type}`,
      s.in ? ` (${s.in} ${s.name})` : "", s.description ? ` - ${s.description}` : "")))) : "");
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) if (item[method]) ops.push([method, path, {...item[method],
      parameters: [...(item.parameters || []), ...(item[method].parameters || [])]}]);
  }
  q("#toc").replaceChildren(el("h2", {}, "Operations"), el("ul", {}, ops.map(([method, path]) =>
    el("li", {}, el("a", {href: "#" + operationAnchor(method, path)}, el("span", {class: `method ${method}`}, method.toUpperCase()), " ", path)))));
  q("#operations").replaceChildren(...ops.map(([method, path, op]) => operationView(doc, method, path, op)));
  q("#schemas").replaceChildren(...Object.entries((doc.components || {}).schemas || {}).map(([name, schema]) =>
    el("article", {class: "schema-def", id: schemaAnchor(name)}, el("h3", {}, name), schemaView(schema))));
  q("#doc").hidden = false;
}

async function load(settings) {
  clearError(q("#error"));
  try {
    render(await callApi({...settings, credential: ""}, "GET", "/v1/openapi.json"));  // an open route
  } catch (err) {
    q("#doc").hidden = true;
    showError(q("#error"), err);
  }
}

async function main() {
  const settings = await loadSettings();
  bindSettingsForm(settings, () => load(settings));
  q("#connect").addEventListener("click", () => load(settings));
  await load(settings);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", main);
