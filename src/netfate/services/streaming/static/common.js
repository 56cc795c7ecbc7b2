// Shared by the streaming service's two apps (app.js, studio.js): element building
// (text only, never markup from the server), the API with its error body shown as
// a sentence, the status line, times, and keyboard-navigable tabs.
(() => {
  const API = "/api/v1/streaming";
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c == null) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function say(text, kind) {
    const m = $("message");
    m.textContent = text || "";
    m.className = `sapp-message ${kind || ""}`;
  }

  // The one error body: {detail, errors?: [{loc, msg}]}; a refusal's reason is in detail.
  function problem(status, body) {
    if (body && typeof body.detail === "string") {
      const fields = (body.errors || []).map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`);
      return [body.detail, ...fields].join("; ");
    }
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    }
    return `HTTP ${status}`;
  }

  // The page's web session (the platform's sign-in): a change carries its CSRF
  // token (the netfate_csrf cookie, readable by this origin's scripts only).
  function csrf() {
    const c = document.cookie.split("; ").find((x) => x.startsWith("netfate_csrf="));
    return c ? c.slice("netfate_csrf=".length) : "";
  }

  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(API + path, init);
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new Error(problem(r.status, data));
    return data;
  }

  const qs = (params) => new URLSearchParams(
    Object.entries(params).filter(([, v]) => v != null && v !== "")).toString();

  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "—");
  const minutes = (s) => `${Math.round(s / 60)} min`;

  // Tabs: click or arrow keys (Home/End too) move between them (WAI-ARIA tabs).
  function tabs(onShow) {
    const all = [...document.querySelectorAll('[role="tab"]')];
    function show(tab, focus) {
      for (const t of all) {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
      if (focus) tab.focus();
      onShow(tab.getAttribute("aria-controls"));
    }
    for (const t of all) {
      t.addEventListener("click", () => show(t, false));
      t.addEventListener("keydown", (ev) => {
        const i = all.indexOf(t);
        const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[ev.key];
        if (to === undefined) return;
        ev.preventDefault();
        show(all[(to + all.length) % all.length], true);
      });
    }
    return (id) => show(all.find((t) => t.getAttribute("aria-controls") === id), false);
  }

  window.streaming = { $, h, say, api, qs, when, minutes, tabs };
})();
