// The delivery trees, live on the dashboard (GET /api/v1/streaming/tree): each
// content's tree as indented nodes from its acquirer down, each branch point drawn
// as what makes its copies: the node's switch (a group ALL under the SDN
// controller, desired.switched) or a forwarder function (desired.forwarders); the
// edge streamers with their viewers, and the functions the loop runs.
(() => {
  if (!(window.netfate && window.netfate.registerPanel)) return;
  const KINDS = ["StreamingViewerAssigned", "StreamingJoinRefused", "StreamingViewerLeft",
    "StreamingBranchPruned", "StreamingStreamerReleased"];
  const mbit = (bps) => `${(bps / 1e6).toFixed(1)} Mbit/s`;

  function tree(x, t, ctx) {
    const kids = {};
    for (const [n, p] of Object.entries(x.parent)) if (p) (kids[p] = kids[p] || []).push(n);
    const fwd = t.desired.forwarders;
    const switched = (t.desired.switched || {})[x.id] || [];
    const streamers = t.state.streamers.filter((s) => s.contents.includes(x.id));
    const viewers = t.state.viewers.filter((v) => v.content === x.id);
    const item = (n) => {
      const here = streamers.filter((s) => s.node === n).map((s) => {
        const vs = viewers.filter((v) => v.streamer === s.id)
          .map((v) => `${v.client}@${v.pe} (case ${v.case})`);
        return ctx.h("li", { class: "dim" }, `edge streamer ${s.id}: ${vs.join(", ") || "no viewer"}`);
      });
      const copy = fwd[n] && fwd[n][x.id] ? "forwarder" : (switched.includes(n) ? "switch" : null);
      const role = n === x.root ? "acquirer" : copy === "forwarder" ? "forwarder" : "switch";
      const badge = copy === "switch"
        ? ctx.h("span", { class: "badge phase-done", title: "OpenFlow group ALL in the node's switch: no function hop" },
          "copies in the switch · group ALL")
        : copy === "forwarder"
          ? ctx.h("span", { class: "badge state-starting", title: "a forwarder function copies to each next hop" },
            "copies by a forwarder function")
          : null;
      const attrs = { class: "streaming-node", "data-node": n, "data-role": role };
      if (copy) attrs["data-copies"] = copy;
      return ctx.h("li", attrs, `${n} · ${role} `, badge,
        ctx.h("ul", {}, ...here, ...(kids[n] || []).sort().map(item)));
    };
    const how = x.pull ? "pulled from its storage"
      : switched.length ? `copies in the switches at ${switched.join(", ")}`
        : Object.keys(fwd).some((n) => fwd[n][x.id]) ? "copies by forwarder functions" : "no branch yet";
    return ctx.h("div", { class: "streaming-tree", "data-content": x.id },
      ctx.h("strong", {}, `${x.id} (${mbit(x.bitrate_bps)})`),
      ctx.h("span", { class: "dim" }, ` · ${how}`), ctx.h("ul", {}, item(x.root)));
  }

  window.netfate.registerPanel({
    id: "streaming",
    roles: ["operator"], // node names, addresses: the operator's
    title: "Live streaming: delivery trees",
    kinds: KINDS,
    mount(el) { this.el = el; },
    async onRefresh(_state, ctx) {
      let t;
      try {
        t = await ctx.api("/streaming/tree");
      } catch (e) {
        return; // the service is not installed on this orchestrator
      }
      const fns = t.functions.map((f) => `${f.key} on ${f.node}${f.detail ? ` (${f.detail})` : ""}`);
      this.el.replaceChildren(
        ctx.h("p", { class: "dim" }, `criterion ${t.criterion} · grace ${t.grace_s} s` +
          (t.violations.length ? ` · over capacity: ${t.violations.join("; ")}` : "")),
        ...(t.state.contents || []).map((x) => tree(x, t, ctx)),
        ctx.h("p", { class: "dim mono" }, fns.join(" · ") || "no functions"));
    },
    onEvent(_ev, ctx) { this.onRefresh(ctx.state, ctx); },
  });
  window.netfate.describeEvent("StreamingViewerAssigned",
    (d) => `${d.client} watches ${d.content} from ${d.streamer} on ${d.node} (case ${d.case})`);
  window.netfate.describeEvent("StreamingJoinRefused", (d) => `${d.client} refused: ${d.why}`);
})();
