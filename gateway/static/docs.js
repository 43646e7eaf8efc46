// The /docs page (docs.html): renders /openapi.json; a file of its own, as the CSP allows no inline script.
"use strict";
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}
function typeOf(schema) {
  if (!schema) return "";
  if (schema.enum) return schema.enum.join(" | ");
  if (schema.type === "array") return (schema.items && schema.items.enum ? schema.items.enum.join(" | ") : "") + " []";
  return schema.format === "binary" ? "file" : (schema.type || "");
}
function table(rows, head) {
  const t = el("table");
  const tr = el("tr");
  head.forEach((h) => tr.appendChild(el("th", h)));
  t.appendChild(tr);
  rows.forEach((row) => {
    const r = el("tr");
    row.forEach((cell) => r.appendChild(el("td", cell)));
    t.appendChild(r);
  });
  return t;
}
function operation(path, method, op) {
  const box = el("section");
  const h = el("h2");
  h.appendChild(el("span", method, "method " + method));
  h.appendChild(document.createTextNode(" " + path));
  box.appendChild(h);
  box.appendChild(el("p", op.summary));
  if (op.parameters && op.parameters.length) {
    box.appendChild(table(op.parameters.map((p) => [p.name, p.in, typeOf(p.schema), p.description || ""]),
                          ["parameter", "in", "type", ""]));
  }
  const body = op.requestBody && op.requestBody.content;
  if (body) {
    Object.entries(body).forEach(([mime, media]) => {
      const props = (media.schema && media.schema.properties) || {};
      const required = (media.schema && media.schema.required) || [];
      box.appendChild(el("p", "Body: " + mime));
      if (Object.keys(props).length) {
        box.appendChild(table(Object.entries(props).map(([name, s]) =>
          [name, typeOf(s), required.includes(name) ? "required" : "", s.description || ""]),
          ["field", "type", "", ""]));
      }
    });
  }
  const answers = Object.keys((op.responses["200"] || {}).content || {});
  box.appendChild(el("p", "Answers: " + answers.join(", ") + ". " + (op.description || ""), "muted"));
  return box;
}
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const root = document.getElementById("paths");
  root.textContent = "";
  document.title = doc.info.title + " " + doc.info.version + " API";
  Object.entries(doc.paths).forEach(([path, methods]) =>
    Object.entries(methods).forEach(([method, op]) => root.appendChild(operation(path, method, op))));
}).catch((err) => { document.getElementById("paths").textContent = "Could not load /openapi.json: " + err; });
