// The catalog's placements, live on the dashboard: each active subscription's
// blocks and the nodes they run on, and its decisions, newest first, each with the
// placement engine's reason (GET /api/v1/catalog/subscriptions[/ID]). Refetched on
// each of the catalog's events and on the dashboard's periodic refresh.
(() => {
  if (!(window.netfate && window.netfate.registerPanel)) return;
  const KINDS = ["SubscriptionPlaced", "SubscriptionRefused", "SubscriptionEnded"];
  const DECISIONS = 5;
  const placed = (nodes) =>
    Object.entries(nodes || {}).sort().map(([b, n]) => `${b} → ${n}`).join(", ") || "—";

  function subscription(sub, ctx) {
    const blocks = sub.instances.slice().sort((a, b) => a.block.localeCompare(b.block));
    const where = blocks.map((i) => ctx.h("li", {
      class: "catalog-block", data: { block: i.block, node: i.node, state: i.state },
    }, `${i.block} on ${i.node} (${i.state})`));
    const decisions = (sub.decisions || []).slice(-DECISIONS).reverse().map((d, k) =>
      ctx.h("li", {
        class: k === 0 ? "catalog-decision latest" : "catalog-decision",
        data: { action: d.action },
      }, ctx.h("strong", {}, `${d.action}: ${placed(d.nodes)}`), " — ",
      ctx.h("span", { class: "catalog-why" }, d.why)));
    return ctx.h("div", {
      class: "catalog-subscription", data: { subscription: sub.id, user: sub.user, at: sub.at },
    },
    ctx.h("h4", {}, `${sub.user} · ${sub.chain} v${sub.version} · at ${sub.at}`),
    ctx.h("ul", { class: "catalog-placement" }, ...where),
    sub.detail ? ctx.h("p", { class: "dim catalog-detail" }, sub.detail) : null,
    ctx.h("ol", { class: "catalog-decisions" }, ...decisions));
  }

  window.netfate.registerPanel({
    id: "catalog",
    roles: ["operator"], // node names: the operator's (a provider sees abstract sites)
    title: "Catalog: placements and their reasons",
    kinds: KINDS,
    mount(el) { this.el = el; this.seq = 0; },
    async onRefresh(_state, ctx) {
      const seq = ++this.seq; // a slower earlier fetch never overwrites a newer one
      let subs;
      try {
        const all = await ctx.api("/catalog/subscriptions");
        const active = all.filter((s) => s.state === "active");
        subs = await Promise.all(active.map((s) => ctx.api(`/catalog/subscriptions/${encodeURIComponent(s.id)}`)));
      } catch (e) {
        return; // the service is not installed on this orchestrator
      }
      if (seq !== this.seq) return;
      this.el.replaceChildren(...(subs.length ? subs.map((s) => subscription(s, ctx))
        : [ctx.h("p", { class: "dim" }, "no active subscription")]));
    },
    onEvent(_ev, ctx) { this.onRefresh(ctx.state, ctx); },
  });
  window.netfate.describeEvent("SubscriptionPlaced",
    (d) => `${d.user}'s ${d.chain} ${d.action}: ${placed(d.nodes)} (${d.why})`);
  window.netfate.describeEvent("SubscriptionRefused", (d) => `${d.user}'s ${d.chain} refused: ${d.reason}`);
  window.netfate.describeEvent("SubscriptionEnded", (d) => `${d.user} ended ${d.subscription}`);
})();
