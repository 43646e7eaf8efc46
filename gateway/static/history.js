// voxbus web page, history view: the transcript store's streams, full-text search with the hits
// highlighted, and a stream's export (SRT/VTT/TXT/JSON). Text from the server only ever becomes
// text nodes (never HTML), so a transcript that says "<b>" shows "<b>".
"use strict";

// In a scope of its own: app.js (and anything else on the page) shares the global one.
(() => {
  const view = { stream: "", cursor: null, query: "" };
  const byId = (id) => document.getElementById(id);

  function historyStatus(text, isError = false) {
    byId("history-status").textContent = text;
    byId("history-status").classList.toggle("error", isError);
  }

  async function askStore(path) {
    const r = await fetch(path, { headers: voxAuth.headers() });
    let body = {};
    try { body = await r.json(); } catch (err) { body = { error: { message: `${r.status} ${r.statusText}` } }; }
    voxAuth.refused(r.status, body.error?.message);
    if (!r.ok) throw new Error(body.error?.message || `${r.status}`);
    return body;
  }

  // With a key, an export is fetched with it and saved from a blob: a plain link cannot send a header.
  async function exportWithKey(link) {
    const r = await fetch(link.href, { headers: voxAuth.headers() });
    if (!r.ok) {
      voxAuth.refused(r.status);
      historyStatus(`Export failed: ${r.status}`, true);
      return;
    }
    const saved = document.createElement("a");
    saved.href = URL.createObjectURL(await r.blob());
    saved.download = link.download;
    saved.click();
    setTimeout(() => URL.revokeObjectURL(saved.href), 1000);
  }

  // The terms of an FTS5 query, to highlight: words and "phrases"; AND/OR/NOT are operators; word* is a prefix.
  function searchTerms(query) {
    const terms = [];
    for (const m of query.matchAll(/"([^"]+)"|([^\s"()]+)/g)) {
      const raw = (m[1] ?? m[2]).trim();
      if (!raw || (!m[1] && /^(AND|OR|NOT|NEAR)$/.test(raw))) continue;
      const prefix = raw.endsWith("*");
      const text = raw.replace(/\*+$/, "");
      if (text) terms.push({ text, prefix });
    }
    return terms;
  }

  function highlighter(query) {
    const terms = searchTerms(query);
    if (!terms.length) return null;
    const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+");
    const parts = terms.map((t) => escape(t.text) + (t.prefix ? "[\\p{L}\\p{N}]*" : "(?![\\p{L}\\p{N}])"));
    return new RegExp(`(?<![\\p{L}\\p{N}])(?:${parts.join("|")})`, "giu");
  }

  // `text` as nodes of `parent`, each match of `pattern` in a <mark>.
  function appendHighlighted(parent, text, pattern) {
    let last = 0;
    if (pattern) {
      for (const m of text.matchAll(pattern)) {
        if (!m[0]) continue;
        parent.append(document.createTextNode(text.slice(last, m.index)));
        const mark = document.createElement("mark");
        mark.textContent = m[0];
        parent.append(mark);
        last = m.index + m[0].length;
      }
    }
    parent.append(document.createTextNode(text.slice(last)));
  }

  function when(epoch) {
    return new Date(epoch * 1000).toLocaleString();
  }

  function showHits(body, append) {
    const list = byId("history-results");
    if (!append) list.replaceChildren();
    const pattern = highlighter(view.query);
    for (const t of body.transcripts) {
      const li = document.createElement("li");
      li.className = "hit";
      const meta = document.createElement("span");
      meta.className = "time";
      meta.textContent = `${when(t.wall)} · ${t.stream}`;
      const text = document.createElement("span");
      text.className = "text";
      appendHighlighted(text, t.text, pattern);
      li.append(meta, text);
      list.append(li);
    }
    view.cursor = body.next_cursor;
    byId("history-more").hidden = !view.cursor;
    const shown = list.children.length;
    historyStatus(shown ? `${shown} transcript${shown === 1 ? "" : "s"}${view.cursor ? " (more below)" : ""}.`
                        : "Nothing found.");
  }

  async function search(append = false) {
    const q = new URLSearchParams({ limit: "50" });
    if (view.query) q.set("q", view.query);
    if (view.stream) q.set("stream", view.stream);
    if (append && view.cursor) q.set("cursor", view.cursor);
    try {
      showHits(await askStore(`/v1/transcripts?${q}`), append);
    } catch (err) {
      historyStatus(`Search failed: ${err.message}`, true);
    }
  }

  function exportLinks(stream) {
    const box = byId("history-export");
    box.replaceChildren();
    if (!stream) return;
    const label = document.createElement("span");
    label.textContent = `Export ${stream}:`;
    box.append(label);
    for (const format of ["srt", "vtt", "txt", "json"]) {
      const a = document.createElement("a");
      a.className = "button export";
      a.dataset.format = format;
      a.href = `/v1/streams/${encodeURIComponent(stream)}/export?format=${format}`;
      a.download = `${stream}.${format}`;
      a.textContent = format.toUpperCase();
      a.addEventListener("click", (e) => {
        if (!voxAuth.key()) return;
        e.preventDefault();
        exportWithKey(a).catch((err) => historyStatus(`Export failed: ${err.message}`, true));
      });
      box.append(a);
    }
  }

  function selectStream(stream) {
    view.stream = stream;
    document.querySelectorAll("#history-streams li").forEach((li) => {
      li.classList.toggle("selected", li.dataset.stream === stream);
    });
    exportLinks(stream);
    search();
  }

  async function loadStreams() {
    let body;
    try {
      body = await askStore("/v1/streams");
    } catch (err) {
      historyStatus(`History unavailable: ${err.message}`, true);
      return;
    }
    const list = byId("history-streams");
    list.replaceChildren();
    for (const s of body.streams) {
      const li = document.createElement("li");
      li.dataset.stream = s.stream;
      li.classList.toggle("selected", s.stream === view.stream);
      const name = document.createElement("button");
      name.type = "button";
      name.textContent = s.stream;
      name.addEventListener("click", () => selectStream(s.stream === view.stream ? "" : s.stream));
      const meta = document.createElement("span");
      meta.className = "time";
      meta.textContent = `${s.kind} · ${s.finals} final${s.finals === 1 ? "" : "s"} · last ${when(s.last)}`;
      li.append(name, meta);
      list.append(li);
    }
    if (!body.streams.length) historyStatus("No transcripts stored yet.");
  }

  byId("history-search").addEventListener("submit", (e) => {
    e.preventDefault();
    view.query = byId("history-q").value.trim();
    search();
  });
  byId("history-more").addEventListener("click", () => search(true));
  byId("history-refresh").addEventListener("click", () => { loadStreams(); search(); });
  window.addEventListener("voxbus-key", () => { loadStreams(); search(); });  // a key was entered (auth.js)
  loadStreams();
})();
