// Smart-device sharing (issue 5). Two uses of one script:
// - on the owner's vHG page (/api/v1/sharing/page, #sharing-app), behind sign-in: a
//   user's page is their own PN's (an operator's names one: ?pn=); devices, details,
//   Share (with a PN id or an invitation code; ?to=CODE fills it in); requests to me
//   (accept/decline); my shares (revoke); each share's ports (set, learned);
//   invitation codes to give; kept live by the event stream (the owner's own events:
//   the other side accepting shows without a reload);
// - on the dashboard: a "Device sharing" panel, every share for the operator, a
//   user's own PN and shares for a user.
// - for the gateway settings page (gateway.js): its helpers, as window.netfateSharing.
// DOM is built with createElement/textContent only: API data never becomes markup.
"use strict";
(function () {
  const API = "/api/v1/sharing";

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v);
    }
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
    return el;
  }

  // A change made with the web session carries its CSRF token (the platform's
  // netfate_csrf cookie, readable by this origin's scripts only; session.js).
  const session = window.netfateSession;

  async function call(method, path, body) {
    const headers = body ? { "Content-Type": "application/json" } : {};
    if (method !== "GET") headers["X-CSRF-Token"] = session ? session.csrf() : "";
    const r = await fetch(API + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (r.status === 401 && session) session.expired(); // signed out, or the session ended
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : `HTTP ${r.status}`);
    return data;
  }

  // Events the page shows in its live list and refreshes on (the stream shows this
  // principal its own only: its shares either way, its PN, its instances).
  const LIVE_KINDS = ["ShareStateChanged", "SharePortsLearned", "PersonalNetworkCreated",
    "InstanceStateChanged"];

  function describe(ev) {
    const d = ev.data || {};
    if (ev.kind === "ShareStateChanged") {
      return `share ${d.share}: ${d.device} of ${d.owner} with ${d.recipient}: ${d.previous || "new"} → ${d.state}`;
    }
    if (ev.kind === "SharePortsLearned") {
      return `share ${d.share}: ports of ${d.device} learned: ${(d.learned || []).join(", ")}`;
    }
    if (ev.kind === "PersonalNetworkCreated") return `Personal Network ${d.email} created`;
    if (ev.kind === "InstanceStateChanged") return `${d.name || d.instance}: ${d.previous || "new"} → ${d.state}`;
    return ev.kind;
  }

  // Whose PN a page shows: a user's page is their own PN's; an operator opens
  // anyone's (?pn= or the #who form, hidden for a user). null: not signed in.
  async function pageOwner() {
    const who = session ? await session.me() : null;
    if (!who) {
      if (session) session.expired();
      return null;
    }
    document.getElementById("who").hidden = who.role === "user";
    return who.role === "user" ? who.name : new URLSearchParams(location.search).get("pn") || "";
  }

  async function page(root) {
    const $ = (id) => document.getElementById(id);
    const params = new URLSearchParams(location.search);
    let me = await pageOwner();
    if (me === null) return;
    root.dataset.pn = me;
    let selected = null;
    $("pn-email").value = me;

    const say = (msg, bad) => {
      $("status").textContent = msg;
      $("status").className = bad ? "error" : "ok";
    };

    let shownDevices = "";
    function showDetails(d) {
      selected = d;
      $("details").hidden = false;
      $("detail-name").textContent = d.name;
      const dl = $("detail-fields");
      dl.replaceChildren();
      for (const k of ["name", "ip", "mac", "kind", "source"]) {
        dl.append(h("dt", {}, k), h("dd", { "data-field": k }, d[k] ?? "—"));
      }
    }

    // "8200 (set), 49152 (learned)": the ports VP1's ALG proxies, and why.
    function ports(p) {
      const set = new Set((p && p.configured) || []);
      const learned = ((p && p.learned) || []).filter((x) => !set.has(x));
      return [...[...set].map((x) => `${x} (set)`), ...learned.map((x) => `${x} (learned)`)].join(", ");
    }

    function button(label, cls, fn) {
      return h("button", { type: "button", class: cls, onclick: async () => {
        try { await fn(); say(`${label}: done`); } catch (e) { say(e.message, true); }
        await refresh();
      } }, label);
    }

    async function refresh() {
      if (!me) return;
      let pn;
      try {
        pn = await call("GET", `/pns/${encodeURIComponent(me)}`);
      } catch (e) {
        say(e.message, true);
        return;
      }
      $("pn-info").textContent = `${pn.email}: ${pn.subnet} on ${pn.node}` +
        (pn.vhg_instance ? `, vHG ${pn.vhg_instance}` : "");
      // Rows are rebuilt only when the devices changed: every event refreshes the page,
      // and a row replaced under the pointer loses the click a person just made.
      const devices = JSON.stringify(pn.devices);
      if (devices !== shownDevices) {
        shownDevices = devices;
        const tb = $("devices").tBodies[0];
        tb.replaceChildren(...pn.devices.map((d) => {
          const tr = h("tr", { "data-device": d.name, tabindex: "0", onclick: () => showDetails(d) },
            h("td", {}, d.name), h("td", {}, d.ip), h("td", {}, d.kind), h("td", {}, d.source));
          return tr;
        }));
        const again = selected && pn.devices.find((d) => d.name === selected.name);
        if (again) showDetails(again);
      }
      const shares = await call("GET", `/shares?pn=${encodeURIComponent(me)}`);
      const inc = shares.filter((s) => s.recipient === me);
      const out = shares.filter((s) => s.owner === me);
      $("incoming").tBodies[0].replaceChildren(...inc.map((s) => {
        const actions = h("td", {});
        if (s.state === "requested") {
          actions.append(
            button("Accept", "accept", () => call("POST", `/shares/${s.id}/accept`, { by: me })),
            button("Decline", "decline", () => call("POST", `/shares/${s.id}/decline`, { by: me })));
        }
        if (["requested", "accepted", "active"].includes(s.state) && s.state !== "requested") {
          actions.append(button("Revoke", "revoke", () => call("POST", `/shares/${s.id}/revoke`, { by: me })));
        }
        return h("tr", { "data-share": s.id, "data-state": s.state },
          h("td", {}, s.id), h("td", {}, s.owner), h("td", {}, s.device), h("td", { class: "state" }, s.state),
          h("td", {}, s.address_in_recipient_pn || ""), h("td", { class: "ports" }, ports(s.ports)), actions);
      }));
      $("outgoing").tBodies[0].replaceChildren(...out.map((s) => {
        const actions = h("td", {});
        if (["requested", "accepted", "active"].includes(s.state)) {
          actions.append(button("Revoke", "revoke", () => call("POST", `/shares/${s.id}/revoke`, { by: me })));
        }
        return h("tr", { "data-share": s.id, "data-state": s.state },
          h("td", {}, s.id), h("td", {}, s.device), h("td", {}, s.recipient),
          h("td", { class: "state" }, s.state), h("td", { class: "ports" }, ports(s.ports)), actions);
      }));
      const invs = await call("GET", `/invitations?pn=${encodeURIComponent(me)}`);
      $("invitations").tBodies[0].replaceChildren(...invs.map((i) => h("tr", { "data-code": i.code },
        h("td", { class: "code" }, i.code), h("td", { class: "state" }, i.state),
        h("td", {}, new Date(i.expires_at * 1000).toLocaleString()), h("td", {}, i.share ?? ""))));
    }

    $("who").addEventListener("submit", (ev) => {
      ev.preventDefault();
      me = $("pn-email").value.trim();
      history.replaceState(null, "", `?pn=${encodeURIComponent(me)}`);
      refresh();
    });
    $("share-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!selected) return;
      try {
        const port = $("http-port").value;
        const s = await call("POST", "/shares", { owner: me, device: selected.name,
          recipient: $("recipient").value.trim(), http_ports: port ? [Number(port)] : [] });
        say(`share ${s.id} requested: ${s.device} with ${s.recipient}`);
      } catch (e) {
        say(e.message, true);
      }
      await refresh();
    });
    $("invite-button").addEventListener("click", async () => {
      if (!me) return;
      try {
        const i = await call("POST", "/invitations", { by: me });
        say(`invitation code ${i.code}: give it to whoever shares a device with you`);
      } catch (e) {
        say(e.message, true);
      }
      await refresh();
    });
    $("recipient").value = params.get("to") || "";
    await refresh();
    live(refresh);
  }

  // The owner's events as they happen: each is listed and the page refreshed (no
  // polling: what changes comes by the stream; a reconnection refreshes once).
  async function live(refresh, kinds = LIVE_KINDS, say = describe) {
    const list = document.getElementById("live-events");
    const state = document.getElementById("live-state");
    let last = 0;
    try {
      const r = await fetch("/api/v1/events?tail=1", { headers: { Accept: "application/json" } });
      const tail = r.ok ? await r.json() : [];
      last = tail.length ? tail[tail.length - 1].id : 0;
    } catch (e) {
      last = 0;
    }
    let timer = null;
    const soon = () => {
      if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 100);
    };
    const onEvent = (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      if (typeof ev.id !== "number" || ev.id <= last) return;
      last = ev.id;
      list.prepend(h("li", { "data-kind": ev.kind, "data-event": ev.id },
        h("time", {}, new Date(ev.at * 1000).toLocaleTimeString()), " ", say(ev)));
      while (list.children.length > 50) list.lastChild.remove();
      soon();
    };
    let retry = 1000;
    const connect = () => {
      const es = new EventSource(`/api/v1/events/stream?after=${last}`);
      for (const k of kinds) es.addEventListener(k, onEvent);
      es.onopen = () => {
        retry = 1000;
        state.dataset.state = "live";
        state.textContent = "live";
        soon();
      };
      es.onerror = () => {
        state.dataset.state = "down";
        state.textContent = "reconnecting…";
        es.close();
        setTimeout(connect, retry);
        retry = Math.min(10000, retry * 2);
      };
    };
    connect();
  }

  window.netfateSharing = { h, call, live, describe, pageOwner };
  const root = document.getElementById("sharing-app");
  if (root) {
    page(root);
  } else if (window.netfate && window.netfate.registerPanel) {
    window.netfate.registerPanel({
      id: "sharing",
      title: "Device sharing",
      roles: ["operator", "user"], // a user's: its own PN and shares (the API's answer)
      kinds: ["ShareStateChanged"],
      mount(el, ctx) {
        this.pn = ctx.h("p", { id: "sharing-pn" });
        this.list = ctx.h("ul", { id: "sharing-shares" });
        el.append(ctx.h("p", {}, ctx.h("a", { href: "/api/v1/sharing/page" }, "owners' page")), this.pn, this.list);
      },
      async onRefresh(state, ctx) {
        if (state.role === "user" && session) {
          const who = await session.me();
          try {
            const pn = await ctx.api(`/sharing/pns/${encodeURIComponent(who.name)}`);
            this.pn.textContent = `My Personal Network ${pn.email}: ${pn.subnet}, ${pn.devices.length} devices`;
          } catch (e) {
            this.pn.textContent = "No Personal Network yet.";
          }
        }
        const shares = await ctx.api("/sharing/shares");
        this.list.replaceChildren(...shares.map((s) => ctx.h("li", { "data-share": s.id },
          `#${s.id} ${s.owner} → ${s.recipient}: ${s.device} (${s.state})`)));
      },
    });
    window.netfate.describeEvent("ShareStateChanged", (d) => `share ${d.share}: ${d.device} ${d.previous || "new"} → ${d.state}`);
  }
})();
