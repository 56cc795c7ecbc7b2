// A Personal Network's gateway settings (issue 15 §2), like a home router's page:
// LAN, DHCP (pool, lease time, static leases), port forwards, firewall allow rules. Served at
// /api/v1/sharing/gateway-page behind sign-in: a user's page is their own PN's (an
// operator's names one: ?pn=). Each change is one PUT of /pns/{email}/gateway; the
// vHG takes it in place. A refused change shows the API's keyed errors and leaves
// the settings as they were. Live by the event stream (GatewaySettingsChanged, the
// vHG's state). Helpers (h, call, live, describe, pageOwner) come from panel.js,
// loaded first.
// DOM is built with createElement/textContent only: API data never becomes markup.
"use strict";
(function () {
  const { h, call, live, describe: shared, pageOwner } = window.netfateSharing;
  const KINDS = ["GatewaySettingsChanged", "InstanceStateChanged", "PersonalNetworkCreated"];

  function describe(ev) {
    const d = ev.data || {};
    if (ev.kind === "GatewaySettingsChanged") {
      return `gateway settings of ${d.pn} changed by ${d.by}: DHCP ${(d.dhcp || []).join("-")}, ` +
        `${d.forwards} forwards, ${d.allow} allow rules`;
    }
    return shared(ev);
  }

  async function page() {
    const $ = (id) => document.getElementById(id);
    let me = await pageOwner();
    if (me === null) return;
    $("pn-email").value = me;
    let current = null;
    const path = () => `/pns/${encodeURIComponent(me)}/gateway`;

    const say = (msg, bad) => {
      $("status").textContent = msg;
      $("status").className = bad ? "error" : "ok";
      $("status").setAttribute("role", bad ? "alert" : "status");
    };

    // One change: the whole part it touches, PUT; the page shows what the API kept.
    async function put(part, what) {
      try {
        current = await call("PUT", path(), part);
        say(`${what}: saved`);
        show();
        return true;
      } catch (e) {
        say(e.message, true);
        return false;
      }
    }

    function remove(kind, i, what) {
      return h("button", { type: "button", class: "remove", "aria-label": `Remove ${what}`,
        onclick: () => put({ [kind]: current[kind].filter((_, k) => k !== i) }, `${what} removed`) },
      "Remove");
    }

    let shownDhcp = "";
    function show() {
      const c = current;
      const lan = $("lan");
      lan.querySelector('[data-field="subnet"]').textContent = c.lan.subnet;
      lan.querySelector('[data-field="node_gateway"]').textContent = c.lan.node_gateway || "—";
      lan.querySelector('[data-field="vhg"]').textContent = c.vhg
        ? `${c.vhg.address || "—"} (${c.vhg.instance}, ${c.vhg.state})` : "no vHG yet";
      // The DHCP fields are refilled only when the settings changed: an event must not
      // overwrite what a person is typing.
      const dhcp = JSON.stringify(c.dhcp);
      if (dhcp !== shownDhcp) {
        shownDhcp = dhcp;
        $("dhcp-first").value = c.dhcp.first;
        $("dhcp-last").value = c.dhcp.last;
        $("dhcp-lease").value = c.dhcp.lease_seconds;
      }
      $("forwards").tBodies[0].replaceChildren(...c.forwards.map((f, i) => {
        const to = f.to_port || f.port;
        const what = `forward ${f.proto} ${f.port} to ${f.to}:${to}`;
        return h("tr", { "data-forward": `${f.proto}/${f.port}` }, h("td", {}, f.proto),
          h("td", {}, f.port), h("td", {}, f.to), h("td", {}, to), h("td", {}, remove("forwards", i, what)));
      }));
      $("static").tBodies[0].replaceChildren(...(c.static || []).map((st, i) => {
        const what = `static lease of ${st.mac} (${st.ip})`;
        return h("tr", { "data-static": st.mac.toLowerCase() }, h("td", {}, st.mac),
          h("td", {}, st.ip), h("td", {}, st.name || "—"), h("td", {}, remove("static", i, what)));
      }));
      $("allow").tBodies[0].replaceChildren(...c.allow.map((a, i) => {
        const what = `allow ${a.proto} ${a.port}${a.to ? ` to ${a.to}` : ""}`;
        return h("tr", { "data-allow": `${a.proto}/${a.port}` }, h("td", {}, a.proto),
          h("td", {}, a.port), h("td", {}, a.to || "any"), h("td", {}, remove("allow", i, what)));
      }));
    }

    async function refresh() {
      if (!me) return;
      try {
        current = await call("GET", path());
      } catch (e) {
        say(e.message, true);
        return;
      }
      show();
    }

    $("who").addEventListener("submit", (ev) => {
      ev.preventDefault();
      me = $("pn-email").value.trim();
      history.replaceState(null, "", `?pn=${encodeURIComponent(me)}`);
      refresh();
    });
    $("dhcp-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!current) return;
      put({ dhcp: { first: $("dhcp-first").value.trim(), last: $("dhcp-last").value.trim(),
        lease_seconds: Number($("dhcp-lease").value) } }, "DHCP");
    });
    $("forward-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!current) return;
      const f = { proto: $("fwd-proto").value, port: Number($("fwd-port").value),
        to: $("fwd-to").value.trim() };
      if ($("fwd-to-port").value) f.to_port = Number($("fwd-to-port").value);
      if (await put({ forwards: [...current.forwards, f] }, `forward ${f.proto} ${f.port}`)) {
        ev.target.reset();
      }
    });
    $("static-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!current) return;
      const st = { mac: $("static-mac").value.trim(), ip: $("static-ip").value.trim() };
      if ($("static-name").value.trim()) st.name = $("static-name").value.trim();
      if (await put({ static: [...(current.static || []), st] }, `static lease of ${st.mac}`)) {
        ev.target.reset();
      }
    });
    $("allow-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!current) return;
      const a = { proto: $("allow-proto").value, port: Number($("allow-port").value) };
      if ($("allow-to").value.trim()) a.to = $("allow-to").value.trim();
      if (await put({ allow: [...current.allow, a] }, `allow ${a.proto} ${a.port}`)) {
        ev.target.reset();
      }
    });
    await refresh();
    live(refresh, KINDS, describe);
  }

  if (document.getElementById("gateway-app")) page();
})();
