// Where each user is, and where their services run at abstract sites (issue 15).
// Two uses of one script:
// - the page /api/v1/catalog/where (#where-app), behind sign-in;
// - on the dashboard: a "Where each user is" panel (every role the API answers) and,
//   for a provider or a user, "Where your services run" (abstract sites).
// What each role sees is decided by the server (GET /catalog/positions and
// /catalog/placements, views.py): a user gets their own positions only, a provider
// its subscribers' with abstract sites, and neither gets a node's name in the
// placements; nothing here hides anything. Positions change without an event (a
// switch sighting, a DHCP lease), so the page polls; API data only ever becomes
// text (createElement/textContent), never markup.
"use strict";
(() => {
  const API = "/api/v1/catalog";
  const EVERY_MS = 2000;
  const HISTORY = 20;
  const SOURCES = { login: "RADIUS login", "host-seen": "seen at a switch port", lease: "DHCP lease" };

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "data") for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      else el.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const when = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "—");
  const source = (s) => `${SOURCES[s] || s}`;

  async function get(path) {
    const r = await fetch(API + path, { headers: { Accept: "application/json" } });
    if (r.status === 401 && window.netfateSession) window.netfateSession.expired();
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  // A box per place with the users there now (the "map"), then a row per user with
  // their history as a timeline, newest first.
  function positionsView(data) {
    const users = data.users || [];
    if (!users.length) return [h("p", { class: "dim", id: "no-positions" }, "no position known")];
    const places = new Map();
    for (const u of users) {
      const at = u.now ? u.now.node : "unknown";
      if (!places.has(at)) places.set(at, []);
      places.get(at).push(u);
    }
    const map = h("div", { class: "where-map", id: "where-map" },
      ...[...places.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([at, us]) =>
        h("div", { class: "where-place", data: { place: at } },
          h("h3", {}, at),
          h("ul", {}, ...us.map((u) => h("li", { data: { user: u.user } }, u.user))))));
    const rows = users.map((u) => {
      const now = u.now;
      const timeline = h("ol", { class: "where-timeline", data: { user: u.user } },
        ...(u.history || []).map((e, k) => h("li", {
          class: k === 0 ? "where-entry latest" : "where-entry",
          data: { node: e.node, source: e.source },
        }, h("time", {}, when(e.seen_at)), " ", h("strong", {}, e.node), ` (${source(e.source)})`,
        e.why ? h("span", { class: "dim where-why" }, ` — ${e.why}`) : null)));
      return h("tr", { class: "where-user", data: { user: u.user, node: now ? now.node : "", source: now ? now.source : "" } },
        h("th", { scope: "row" }, u.user),
        h("td", { class: "where-now" }, now ? now.node : "unknown"),
        h("td", { class: "where-source" }, now ? source(now.source) : "—"),
        h("td", {}, now ? when(now.seen_at) : "—"),
        h("td", {}, now && now.why ? h("span", { class: "where-why" }, now.why) : "", timeline));
    });
    const table = h("table", { class: "where-users", id: "where-users" },
      h("thead", {}, h("tr", {}, h("th", {}, "user"), h("th", {}, "now at"), h("th", {}, "from"),
        h("th", {}, "seen"), h("th", {}, "why, and history (newest first)"))),
      h("tbody", {}, ...rows));
    const out = [map, table];
    if ((data.refused || []).length) {
      out.push(h("details", { class: "where-refused" },
        h("summary", {}, `${data.refused.length} DHCP lease line(s) refused`),
        h("ul", {}, ...data.refused.map((r) =>
          h("li", {}, `${r.instance} at ${r.node}, line ${r.line}: ${r.reason}`)))));
    }
    return out;
  }

  function placementsView(subs) {
    if (!subs.length) return [h("p", { class: "dim", id: "no-placements" }, "no active subscription")];
    return subs.map((s) => h("div", { class: "where-subscription", data: { subscription: s.id, user: s.user, at: s.user_at.label } },
      h("h3", {}, `${s.user} · ${s.chain} v${s.version} · now at ${s.user_at.label}`),
      // placed for another place: the chain has not followed its user (yet)
      s.placed_for.site !== s.user_at.site
        ? h("p", { class: "dim where-behind" }, `placed for ${s.placed_for.label} (${s.placed_for.site})`) : null,
      h("ul", { class: "where-blocks" }, ...s.blocks.map((b) =>
        h("li", { class: "where-block", data: { block: b.block, site: b.site, tier: b.tier, label: b.label } },
          `${b.block}: ${b.label} (${b.site}, ${b.tier}; ${b.state})`))),
      h("ol", { class: "where-decisions" }, ...s.decisions.map((d) =>
        h("li", { data: { action: d.action } }, h("strong", {}, `${d.action}`), ` ${when(d.at)} — `,
          h("span", { class: "where-why" }, d.why))))));
  }

  const scope = {
    operator: "every user the platform knows, with the node and the evidence",
    user: "your own positions only",
    provider: "your subscribers only, at abstract sites",
  };

  // ------------------------------------------------------------------ the page

  async function page(app) {
    const who = window.netfateSession ? await window.netfateSession.me() : null;
    if (!who) { if (window.netfateSession) window.netfateSession.expired(); return; }
    document.getElementById("pos-scope").textContent = `You see ${scope[who.role] || "nothing"}.`;
    const state = document.getElementById("live-state");
    const status = document.getElementById("status");
    let seq = 0;
    // Pages of users by name (GET /positions: `next`); `back` holds the cursors of
    // the pages before, so "previous" needs no cursor from the server.
    let after = null;
    const back = [];
    // users per page: ?per=N in the page's address (1-1000; the API's default 200)
    const per = parseInt(new URLSearchParams(location.search).get("per") || "", 10);
    const PER = per >= 1 && per <= 1000 ? per : 200;
    const go = (cursor, dir) => () => {
      if (dir > 0) back.push(after); else back.pop();
      after = cursor;
      refresh();
    };
    const pager = (pos) => {
      if (!pos.next && !back.length) return null;
      const first = pos.users.length ? pos.users[0].user : "";
      const last = pos.users.length ? pos.users[pos.users.length - 1].user : "";
      return h("nav", { class: "where-pager", id: "where-pager", "aria-label": "pages of users" },
        h("button", { type: "button", id: "where-prev", ...(back.length ? {} : { disabled: "" }) }, "‹ previous"),
        ` users ${first} to ${last} of ${pos.total} `,
        h("button", { type: "button", id: "where-next", ...(pos.next ? {} : { disabled: "" }) }, "next ›"));
    };
    const refresh = async () => {
      const mine = ++seq;
      try {
        const q = `/positions?history=${HISTORY}&limit=${PER}` + (after ? `&after=${encodeURIComponent(after)}` : "");
        const [pos, subs] = await Promise.all([get(q), get("/placements")]);
        if (mine !== seq) return;
        const nav = pager(pos);
        if (nav) {
          const [prev, next] = nav.querySelectorAll("button");
          prev.onclick = go(back[back.length - 1] ?? null, -1);
          next.onclick = go(pos.next, +1);
        }
        document.getElementById("positions").replaceChildren(...positionsView(pos), ...(nav ? [nav] : []));
        document.getElementById("placements").replaceChildren(...placementsView(subs));
        state.dataset.state = "live";
        state.textContent = `live (${when(pos.at)})`;
        status.textContent = "";
        app.dataset.ready = "1";
      } catch (e) {
        state.dataset.state = "down";
        state.textContent = "retrying…";
        status.textContent = String(e.message || e);
      }
    };
    const loop = async () => {
      if (!document.hidden) await refresh();
      setTimeout(loop, EVERY_MS);
    };
    loop();
  }

  // ------------------------------------------------------------------ the dashboard

  function panels() {
    const N = window.netfate;
    N.registerPanel({
      id: "catalog-where",
      roles: ["operator", "provider", "user"],
      title: "Where each user is",
      kinds: ["SubscriptionPlaced", "SubscriptionEnded", "UserLoggedIn"],
      mount(el) {
        this.el = el; this.seq = 0;
        const loop = () => { if (!document.hidden) this.onRefresh(); setTimeout(loop, EVERY_MS); };
        loop();
      },
      async onRefresh() {
        const seq = ++this.seq;
        let pos;
        try { pos = await get(`/positions?history=${HISTORY}`); } catch (e) { return; } // no catalog here
        if (seq !== this.seq) return;
        this.el.replaceChildren(...positionsView(pos),
          ...(pos.next ? [h("p", { class: "dim", id: "where-more" }, `the first ${pos.users.length} of ${pos.total} users; the page has the rest`)] : []),
          h("p", {}, h("a", { href: `${API}/where` }, "open the page")));
      },
      onEvent() { this.onRefresh(); },
    });
    N.registerPanel({
      id: "catalog-sites",
      roles: ["provider", "user"], // the operator's panel (panel.js) names the nodes
      title: "Catalog: where the services run (abstract sites)",
      kinds: ["SubscriptionPlaced", "SubscriptionEnded"],
      mount(el) { this.el = el; this.seq = 0; },
      async onRefresh() {
        const seq = ++this.seq;
        let subs;
        try { subs = await get("/placements"); } catch (e) { return; }
        if (seq !== this.seq) return;
        this.el.replaceChildren(...placementsView(subs));
      },
      onEvent() { this.onRefresh(); },
    });
  }

  const start = () => {
    const app = document.getElementById("where-app");
    if (app) page(app);
    else if (window.netfate && window.netfate.registerPanel) panels();
  };
  if (window.netfate && window.netfate.registerPanel) start();
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
