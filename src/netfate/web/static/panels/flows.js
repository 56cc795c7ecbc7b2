// Flow tables of the edge switches, with their packet and byte counters, as the
// SDN controller last read them (GET /api/v1/nodes/{node}/flows).
(() => {
  if (!(window.netfate && window.netfate.registerPanel)) return;
  window.netfate.registerPanel({
    id: "flows",
    roles: ["operator"], // node names, addresses: the operator's
    title: "Flow tables",
    kinds: ["intent_added", "intent_deleted"],
    mount(el, ctx) {
      this.node = null;
      this.picker = ctx.h("div", { class: "flow-nodes" });
      this.note = ctx.h("p", {}, "");
      this.table = ctx.h("table", { class: "flows" });
      el.append(this.picker, this.note, this.table);
    },
    async onRefresh(state, ctx) {
      const nodes = ((state.topo && state.topo.nodes) || []).map((n) => n.name);
      if (!nodes.length) return;
      if (!this.node || !nodes.includes(this.node)) this.node = nodes[0];
      this.picker.replaceChildren(...nodes.map((name) => {
        const b = ctx.h("button", { type: "button" }, name);
        if (name === this.node) b.setAttribute("aria-pressed", "true");
        b.addEventListener("click", () => { this.node = name; this.onRefresh(state, ctx); });
        return b;
      }));
      let got;
      try {
        got = await ctx.api(`/nodes/${encodeURIComponent(this.node)}/flows`);
      } catch (e) {
        this.note.textContent = `no flow table for ${this.node}`;
        this.table.replaceChildren();
        return;
      }
      const flows = (got.flows || []).slice().sort((a, b) => b.priority - a.priority);
      if (!got.at) {
        this.note.textContent = `${this.node}: no controller has read this switch ` +
          "(standalone bridges forward with NORMAL; netfate testbed up --sdn uses the controller)";
        this.table.replaceChildren();
        return;
      }
      const age = Math.max(0, Date.now() / 1000 - got.at).toFixed(0);
      this.note.textContent = `${this.node}: ${flows.length} flows, read ${age} s ago`;
      const head = ctx.h("tr", {}, ...["prio", "cookie", "match", "actions", "packets", "bytes"]
        .map((t) => ctx.h("th", {}, t)));
      const rows = flows.map((f) => ctx.h("tr", {},
        ctx.h("td", {}, String(f.priority)),
        ctx.h("td", { class: "mono" }, String(f.cookie)),
        ctx.h("td", { class: "mono" },
          Object.entries(f.match || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "*"),
        ctx.h("td", { class: "mono" }, String(f.actions)),
        ctx.h("td", {}, String(f.packets)),
        ctx.h("td", {}, String(f.bytes))));
      this.table.replaceChildren(head, ...rows);
    },
  });
})();
