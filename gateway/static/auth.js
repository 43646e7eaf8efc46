// voxbus web page: the API key, when the server asks for one (a 401, or a WebSocket closed with 4401).
// Kept in this tab only (sessionStorage: gone when the tab closes, never sent to another site), and
// sent as Authorization on fetch/XHR and as the subprotocol voxbus-key.KEY on the WebSocket (which
// cannot carry headers; the server answers with the subprotocol "voxbus", never the key).
"use strict";

const voxAuth = (() => {
  const STORE = "voxbus-api-key";
  const byId = (id) => document.getElementById(id);
  const key = () => sessionStorage.getItem(STORE) || "";

  function ask(reason) {
    byId("key-status").textContent = reason;
    byId("key-form").hidden = false;
    byId("api-key").focus();
  }

  byId("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = byId("api-key").value.trim();
    if (value) sessionStorage.setItem(STORE, value);
    else sessionStorage.removeItem(STORE);
    byId("api-key").value = "";
    byId("key-form").hidden = true;
    window.dispatchEvent(new Event("voxbus-key"));  // whatever was refused without it may ask again
    probe();
  });

  // Does the server want a key (or refuse the one we have)? /model/info needs any valid key when keys are on.
  async function probe() {
    try {
      const r = await fetch("/model/info", { headers: headers() });
      if (r.status === 401) ask(key() ? "The server refused this API key." : "This server needs an API key.");
    } catch (err) { /* unreachable: the health badge says so */ }
  }

  function headers(extra = {}) {
    return key() ? { ...extra, Authorization: `Bearer ${key()}` } : extra;
  }

  function protocols() {
    return key() ? ["voxbus", `voxbus-key.${key()}`] : [];
  }

  // A refusal from any request: 401 asks for a key, 403 says what this key may not do.
  function refused(status, message) {
    if (status === 401 || status === 4401) ask(key() ? "The server refused this API key." : "This server needs an API key.");
    else if (status === 403 || status === 4403) ask(`This API key may not do that: ${message || ""}`);
  }

  probe();
  return { headers, protocols, refused, key };
})();
