// NetFATE's NFVI database, as in the paper: Table I users, Table II network
// functions, Table III forwarding rules (GET /api/v1/firewall/tables), kept live by
// the service's events.
(() => {
  if (!(window.netfate && window.netfate.registerPanel)) return;
  const KINDS = ["UserLoggedIn", "UserWentIdle", "FirewallCreated", "FirewallStarted",
    "FirewallMigrationStarted", "FirewallMigrated", "FirewallMigrationRefused",
    "FirewallPlacementFailed", "FirewallReleased", "FirewallRulesChanged"];
  const when = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "—");
  const COLUMNS = {
    users: [["user", (u) => u.name], ["functions", (u) => (u.functions || []).join(", ")],
      ["status", (u) => u.status], ["access CPE", (u) => u.access_node || "—"],
      ["IP", (u) => u.ip || "—"], ["last packet", (u) => when(u.last_packet_at)]],
    functions: [["function", (f) => f.name], ["kind", (f) => f.kind],
      ["active", (f) => (f.active ? "yes" : "no")], ["where", (f) => f.node || "—"],
      ["users", (f) => String(f.users)], ["instance", (f) => f.instance || "—"]],
    forwarding: [["user MAC", (r) => r.mac || "—"], ["user IP", (r) => r.ip || "—"],
      ["function MAC", (r) => r.function_mac || "—"], ["node", (r) => r.node || "—"],
      ["steering", (r) => r.steering || "—"]],
  };
  const TITLES = { users: "Table I: users", functions: "Table II: network functions",
    forwarding: "Table III: forwarding rules" };

  window.netfate.registerPanel({
    id: "firewall",
    roles: ["operator"], // node names, addresses: the operator's
    title: "NetFATE: NFVI database",
    kinds: KINDS,
    mount(el, ctx) {
      this.el = el;
      this.tables = {};
      for (const key of Object.keys(COLUMNS)) {
        const t = ctx.h("table", { class: `firewall-${key}` });
        this.tables[key] = t;
        el.append(ctx.h("h4", {}, TITLES[key]), t);
      }
    },
    async onRefresh(_state, ctx) {
      let got;
      try {
        got = await ctx.api("/firewall/tables");
      } catch (e) {
        return; // the service is not installed on this orchestrator
      }
      for (const [key, cols] of Object.entries(COLUMNS)) {
        const head = ctx.h("tr", {}, ...cols.map(([t]) => ctx.h("th", {}, t)));
        const rows = (got[key] || []).map((row) =>
          ctx.h("tr", {}, ...cols.map(([, f]) => ctx.h("td", {}, String(f(row))))));
        this.tables[key].replaceChildren(head, ...rows);
      }
    },
    onEvent(_ev, ctx) { this.onRefresh(ctx.state, ctx); },
  });
  window.netfate.describeEvent("UserLoggedIn", (d) => `${d.user} logged in at ${d.node || d.access_node || "?"}`);
  window.netfate.describeEvent("FirewallMigrated", (d) => `firewall of ${d.user} moved ${d.from || "?"} → ${d.to || "?"}${d.downtime_ms != null ? ` (downtime ${Number(d.downtime_ms).toFixed(1)} ms)` : ""}`);
  window.netfate.describeEvent("FirewallReleased", (d) => `firewall of ${d.user} released`);
})();
