/* netfate dashboard: topology drawing, instances, nodes, migrations, live events.
 *
 * Data comes from the orchestrator's REST API (/api/v1) and its server-sent event
 * stream (/api/v1/events/stream). Every value from the API is untrusted (names,
 * reasons, configs can be user-supplied): this file builds the DOM with
 * createElement / createElementNS and textContent only, never innerHTML.
 *
 * How it stays current:
 *   - an EventSource listens to the stream; each event is added to the feed and
 *     schedules a (debounced) refresh of topology, instances and migrations;
 *   - the stream names each event (`event: <Kind>`), and EventSource only delivers
 *     named events to listeners of that name, so events of kinds nobody listens
 *     for are picked up by a catch-up read of /events?after=<last id> (on a gap
 *     in the ids and every few seconds);
 *   - a slow periodic refresh keeps node resources and "last seen" current.
 *
 * Each principal sees its own (the page asks /auth/me, session.js): the operator
 * everything; a provider or a user only its own instances, where they run as a
 * location class ("cpe near laptop1", never a node's name), and its own events; the
 * topology, nodes and migrations are the operator's and are not asked for. A panel
 * names the roles it is for (`roles`; all when absent).
 *
 * Extension point for services: window.netfate (see registerPanel below and the
 * docstring of netfate/web/__init__.py). Panel scripts in /static/panels/*.js are
 * loaded after this file.
 */
"use strict";

(() => {
  const API = "/api/v1";
  const SVGNS = document.getElementById("topology").namespaceURI;
  const REFRESH_MS = 3000;
  const FEED_MAX = 300;
  const FEED_BACKLOG = 80;

  const KIND_ORDER = ["core", "pop", "pe", "cpe", "hrh"];
  const KIND_LABEL = { core: "Core", pop: "PoP", pe: "PE", cpe: "CPE", hrh: "HRH" };
  const STATES = ["requested", "starting", "running", "migrating", "stopping", "failed", "gone"];
  const LIVE = new Set(["requested", "starting", "running", "migrating"]);
  const BUILTIN_KINDS = [
    "NodeRegistered",
    "NodeUnreachable",
    "InstancePlaced",
    "InstanceStateChanged",
    "InstanceMigrated",
    "MigrationFailed",
  ];

  // Geometry of the drawing (SVG user units).
  const G = {
    nodeW: 220,
    headH: 50,
    chipH: 22,
    chipGap: 4,
    maxChips: 5,
    hostW: 118,
    hostH: 38,
    hostGapX: 12,
    hostDrop: 44,
    colGap: 56,
    rowGap: 92,
    pad: 36,
    maxPerRow: 8,
  };

  // ------------------------------------------------------------------ state

  const S = {
    role: "operator",
    topo: null,
    instances: [],
    byId: new Map(),
    migrations: [],
    descriptors: new Map(),
    lastId: 0,
    selected: null,
    showGone: false,
    layout: null,
    linkPrev: new Map(), // "node>peer" -> {at, bytes}
    linkBps: new Map(), // "node>peer" -> bits/s
  };

  // ------------------------------------------------------------------ DOM helpers

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = String(v);
      else el.setAttribute(k, String(v));
    }
    return el;
  }

  /** h("div", {class: "x", data: {id: 1}}, "text", child) — text is always text. */
  function h(tag, attrs, ...children) {
    return append(setAttrs(document.createElement(tag), attrs), children);
  }

  /** Same as h() for SVG elements. */
  function s(tag, attrs, ...children) {
    return append(setAttrs(document.createElementNS(SVGNS, tag), attrs), children);
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  const $ = (id) => document.getElementById(id);

  async function api(path, init) {
    const r = await fetch(API + path, Object.assign({ headers: { Accept: "application/json" } }, init));
    if (r.status === 401 && window.netfateSession) window.netfateSession.expired(); // signed out
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  // ------------------------------------------------------------------ formatting

  function fmtRate(bps) {
    if (bps === null || bps === undefined) return "";
    const units = [
      [1e9, "Gbit/s"],
      [1e6, "Mbit/s"],
      [1e3, "kbit/s"],
    ];
    for (const [f, u] of units) if (bps >= f) return `${+(bps / f).toFixed(bps / f < 10 ? 1 : 0)} ${u}`;
    return `${Math.round(bps)} bit/s`;
  }

  function fmtDelay(sec) {
    if (sec === null || sec === undefined) return "";
    if (sec >= 1) return `${+sec.toFixed(2)} s`;
    if (sec >= 0.001) return `${+(sec * 1e3).toFixed(1)} ms`;
    return `${+(sec * 1e6).toFixed(0)} µs`;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "—";
    if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
    if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
    if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
    return `${n} B`;
  }

  function fmtMem(mb) {
    if (mb === null || mb === undefined) return "—";
    return mb >= 1024 ? `${+(mb / 1024).toFixed(1)} GiB` : `${Math.round(mb)} MiB`;
  }

  const pad2 = (n) => String(n).padStart(2, "0");

  function fmtTime(at, ms) {
    if (!at) return "—";
    const d = new Date(at * 1000);
    const t = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    return ms ? `${t}.${String(d.getMilliseconds()).padStart(3, "0")}` : t;
  }

  function fmtAgo(at) {
    if (!at) return "never";
    const dt = Math.max(0, Date.now() / 1000 - at);
    if (dt < 1.5) return "just now";
    if (dt < 90) return `${Math.round(dt)} s ago`;
    if (dt < 5400) return `${Math.round(dt / 60)} min ago`;
    return `${Math.round(dt / 3600)} h ago`;
  }

  function fmtDuration(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return "";
    if (sec < 1) return `${Math.round(sec * 1000)} ms`;
    if (sec < 120) return `${sec.toFixed(1)} s`;
    return `${Math.round(sec / 60)} min`;
  }

  function truncate(text, n) {
    const t = String(text ?? "");
    return t.length > n ? `${t.slice(0, n - 1)}…` : t;
  }

  function isoTime(at) {
    return at ? new Date(at * 1000).toISOString() : "";
  }

  const kindClass = (k) => (KIND_ORDER.includes(k) ? k : "other");
  const stateClass = (st) => (STATES.includes(st) ? st : "other");
  const statusClass = (st) => (["up", "unreachable", "unknown"].includes(st) ? st : "unknown");

  function instLabel(id) {
    const i = S.byId.get(id);
    return i ? i.name || i.id : id;
  }

  // ------------------------------------------------------------------ extension registry

  const panels = [];
  const listeners = new Map(); // kind -> [fn]
  const describers = new Map(); // kind -> fn(data) -> string
  const refreshHooks = [];
  let started = false;
  let es = null;

  const ctx = {
    h,
    s,
    api,
    clear,
    fmt: { rate: fmtRate, delay: fmtDelay, bytes: fmtBytes, time: fmtTime, ago: fmtAgo },
    get state() {
      return S;
    },
    select: (id) => selectInstance(id),
  };

  /** Listen for events of `kind` (live); fn(event, ctx). */
  function on(kind, fn) {
    if (!listeners.has(kind)) {
      listeners.set(kind, []);
      if (es) es.addEventListener(kind, onStreamMessage);
    }
    if (fn) listeners.get(kind).push(fn);
  }

  /** Turn an event of `kind` into one line of text for the feed: fn(data, ctx). */
  function describeEvent(kind, fn) {
    describers.set(kind, fn);
    on(kind);
  }

  /**
   * Add a panel below the core ones: {id, title, kinds?, mount?, onEvent?, onRefresh?,
   * draw?}. `draw(layer, layout, ctx)` paints over the topology after each redraw, in
   * its own SVG <g> (emptied before each call), under the instance chips: layout.pos
   * maps node name -> {x, y, w, h, cx, cy} and layout.hostPos host name -> {x, y, w, h}.
   * A panel with only `draw` adds no card.
   */
  /** Whether the signed-in principal's role may see this panel. */
  function allowed(panel) {
    return !panel.roles || panel.roles.includes(S.role);
  }

  function registerPanel(panel) {
    panels.push(panel);
    if (panel.draw) {
      const layer = s("g", { class: "layer-panel", data: { panel: panel.id } });
      svg.insertBefore(layer, layers.insts);
      overlays.push({ panel, layer });
    }
    for (const k of panel.kinds || []) on(k, (ev) => allowed(panel) && panel.onEvent && panel.onEvent(ev, ctx));
    if (panel.onRefresh) refreshHooks.push((st) => allowed(panel) && panel.onRefresh(st, ctx));
    if (started) {
      mountPanel(panel);
      if (S.topo) render();
    }
  }

  function mountPanel(panel) {
    if (!panel.mount || !allowed(panel)) return;
    const body = h("div", { class: "panel-body" });
    const sec = h(
      "section",
      { class: "card panel", id: `panel-${String(panel.id).replace(/[^a-zA-Z0-9_-]/g, "_")}` },
      h("div", { class: "card-head" }, h("h2", {}, panel.title || panel.id)),
      body,
    );
    $("panels").appendChild(sec);
    try {
      panel.mount && panel.mount(body, ctx);
    } catch (err) {
      body.appendChild(h("p", { class: "error" }, `panel failed: ${err}`));
    }
  }

  window.netfate = { registerPanel, describeEvent, on, h, s, api, ctx };

  // ------------------------------------------------------------------ layout

  // Rows from the core down to the customer: an HRH sits at home, like a CPE.
  const RANK = { core: 0, pop: 1, pe: 2, cpe: 3, hrh: 3 };

  function kindRank(kind) {
    return kind in RANK ? RANK[kind] : 2.5;
  }

  const natural = (a, b) => String(a).localeCompare(String(b), "en", { numeric: true });

  /**
   * Split one kind's nodes into rows when they form a tree among themselves (a
   * chain or tree of PEs): breadth-first from those linked to the rows above. A
   * ring or mesh stays in one row, where its links read better.
   */
  function subLayers(members, adj, above) {
    const inTier = new Set(members);
    let edges = 0;
    for (const m of members) edges += adj.get(m).filter((x) => inTier.has(x)).length;
    edges /= 2;
    if (edges === 0) return [members];
    // A forest has fewer edges than nodes in every component; count components.
    const comp = new Map();
    let ncomp = 0;
    for (const m of members) {
      if (comp.has(m)) continue;
      ncomp += 1;
      const stack = [m];
      comp.set(m, ncomp);
      while (stack.length) {
        const x = stack.pop();
        for (const y of adj.get(x)) if (inTier.has(y) && !comp.has(y)) comp.set(y, ncomp), stack.push(y);
      }
    }
    if (edges !== members.length - ncomp) return [members];
    const depth = new Map();
    const queue = [];
    for (let c = 1; c <= ncomp; c++) {
      const part = members.filter((m) => comp.get(m) === c);
      let roots = part.filter((m) => adj.get(m).some((x) => above.has(x)));
      if (!roots.length) roots = [part[0]];
      for (const r of roots) depth.set(r, 0), queue.push(r);
    }
    while (queue.length) {
      const x = queue.shift();
      for (const y of adj.get(x)) {
        if (inTier.has(y) && !depth.has(y)) depth.set(y, depth.get(x) + 1), queue.push(y);
      }
    }
    const rows = [];
    for (const m of members) (rows[depth.get(m)] ||= []).push(m);
    return rows.filter(Boolean);
  }

  /** Tiers by node kind (core on top, CPE/HRH at the bottom), ordered to limit crossings. */
  function computeLayout(topo, instances) {
    const nodes = topo.nodes || [];
    const hostsOf = new Map();
    for (const n of nodes) hostsOf.set(n.name, []);
    for (const ho of topo.hosts || []) if (hostsOf.has(ho.node)) hostsOf.get(ho.node).push(ho);

    const perNode = new Map();
    for (const n of nodes) perNode.set(n.name, 0);
    for (const i of instances) if (perNode.has(i.node)) perNode.set(i.node, perNode.get(i.node) + 1);
    const slots = Math.max(1, Math.min(G.maxChips, Math.max(0, ...perNode.values())));
    const nodeH = G.headH + slots * (G.chipH + G.chipGap) + 8;

    const adj = new Map(nodes.map((n) => [n.name, []]));
    for (const l of topo.links || []) {
      if (adj.has(l.a) && adj.has(l.b)) {
        adj.get(l.a).push(l.b);
        adj.get(l.b).push(l.a);
      }
    }

    // Group by rank, then split long tiers into rows.
    const ranks = [...new Set(nodes.map((n) => kindRank(n.kind)))].sort((a, b) => a - b);
    const tiers = [];
    const placed = new Set();
    for (const r of ranks) {
      const members = nodes
        .filter((n) => kindRank(n.kind) === r)
        .map((n) => n.name)
        .sort(natural);
      for (const sub of subLayers(members, adj, placed)) tiers.push(sub);
      for (const m of members) placed.add(m);
    }
    // Barycentre ordering, top-down then bottom-up, a few sweeps.
    const order = new Map();
    const reindex = () => tiers.forEach((t) => t.forEach((n, i) => order.set(n, (i + 0.5) / t.length)));
    reindex();
    const sweep = (ti, refTier) => {
      const ref = new Set(refTier);
      const bc = (n) => {
        const ns = adj.get(n).filter((m) => ref.has(m));
        return ns.length ? ns.reduce((a, m) => a + order.get(m), 0) / ns.length : order.get(n);
      };
      tiers[ti].sort((a, b) => bc(a) - bc(b) || natural(a, b));
      reindex();
    };
    for (let it = 0; it < 3; it++) {
      for (let t = 1; t < tiers.length; t++) sweep(t, tiers[t - 1]);
      for (let t = tiers.length - 2; t >= 0; t--) sweep(t, tiers[t + 1]);
    }

    const rows = [];
    // A long row wraps column by column, so the children of one parent (adjacent
    // after the ordering above) form a block of columns under it, not a stripe.
    for (const t of tiers) {
      const nrows = Math.ceil(t.length / G.maxPerRow);
      const per = Math.ceil(t.length / nrows);
      const block = Array.from({ length: nrows }, () => []);
      t.forEach((n, i) => block[i % nrows].push([Math.floor(i / nrows), n]));
      for (const r of block) rows.push(r.sort((x, y) => x[0] - y[0]).map((x) => x[1]).slice(0, per));
    }

    const hostRowsOf = (name) => Math.ceil(hostsOf.get(name).length / 4);
    const slotW = (name) => {
      const k = Math.min(4, hostsOf.get(name).length);
      return Math.max(G.nodeW, k * G.hostW + (k - 1) * G.hostGapX);
    };
    const rowW = rows.map((r) => r.reduce((a, n) => a + slotW(n), 0) + (r.length - 1) * G.colGap);
    const width = Math.max(640, ...rowW) + 2 * G.pad;

    const pos = new Map();
    const hostPos = new Map();
    let y = G.pad;
    rows.forEach((r, ri) => {
      let x = (width - rowW[ri]) / 2;
      let maxHostRows = 0;
      for (const name of r) {
        const w = slotW(name);
        const cx = x + w / 2;
        pos.set(name, { x: cx - G.nodeW / 2, y, w: G.nodeW, h: nodeH, cx, cy: y + nodeH / 2 });
        const hs = hostsOf.get(name);
        hs.forEach((ho, i) => {
          const row = Math.floor(i / 4);
          const inRow = Math.min(4, hs.length - row * 4);
          const rw = inRow * G.hostW + (inRow - 1) * G.hostGapX;
          const hx = cx - rw / 2 + (i % 4) * (G.hostW + G.hostGapX);
          const hy = y + nodeH + G.hostDrop + row * (G.hostH + 14);
          hostPos.set(ho.name, { x: hx, y: hy, w: G.hostW, h: G.hostH, node: name });
        });
        maxHostRows = Math.max(maxHostRows, hostRowsOf(name));
        x += w + G.colGap;
      }
      y += nodeH + (maxHostRows ? G.hostDrop + maxHostRows * (G.hostH + 14) : 0) + G.rowGap;
    });
    const height = y - G.rowGap + G.pad - 14;
    return { pos, hostPos, width, height, nodeH, slots };
  }

  // ------------------------------------------------------------------ topology drawing

  const svg = $("topology");
  const layers = {};
  for (const name of ["links", "hosts", "nodes", "migr", "insts"]) {
    layers[name] = s("g", { class: `layer-${name}` });
    svg.appendChild(layers[name]);
  }
  const chips = new Map(); // instance id -> <g>
  const overlays = []; // {panel, layer} of panels that draw on the topology

  function linkBps(a, b) {
    const v1 = S.linkBps.get(`${a}>${b}`);
    const v2 = S.linkBps.get(`${b}>${a}`);
    if (v1 === undefined && v2 === undefined) return null;
    return Math.max(v1 || 0, v2 || 0);
  }

  function updateLinkRates(nodes) {
    for (const n of nodes) {
      const res = n.resources || {};
      const at = res.at;
      for (const [peer, c] of Object.entries(res.links || {})) {
        const key = `${n.name}>${peer}`;
        const bytes = (c.rx_bytes || 0) + (c.tx_bytes || 0);
        const prev = S.linkPrev.get(key);
        if (prev && at && at > prev.at && bytes >= prev.bytes) {
          S.linkBps.set(key, ((bytes - prev.bytes) * 8) / (at - prev.at));
        }
        if (at && (!prev || at > prev.at)) S.linkPrev.set(key, { at, bytes });
      }
    }
  }

  function drawTopology() {
    const topo = S.topo;
    const empty = !topo || !(topo.nodes || []).length;
    $("topo-empty").hidden = !empty;
    svg.classList.toggle("is-empty", empty);
    if (empty) {
      for (const l of Object.values(layers)) clear(l);
      chips.clear();
      return;
    }
    const shown = S.instances.filter((i) => LIVE.has(i.state) || i.state === "failed" || i.state === "stopping");
    const L = computeLayout(topo, shown);
    S.layout = L;
    svg.setAttribute("viewBox", `0 0 ${L.width} ${L.height}`);
    svg.style.aspectRatio = `${L.width} / ${L.height}`;
    svg.style.maxWidth = `${Math.round(L.width * 1.1)}px`;

    // Links
    clear(layers.links);
    for (const l of topo.links || []) {
      const pa = L.pos.get(l.a);
      const pb = L.pos.get(l.b);
      if (!pa || !pb) continue;
      const bps = linkBps(l.a, l.b);
      const busy = bps !== null && bps > 1000;
      const g = s("g", { class: `link${busy ? " busy" : ""}`, data: { a: l.a, b: l.b } });
      g.appendChild(s("line", { x1: pa.cx, y1: pa.cy, x2: pb.cx, y2: pb.cy, class: "wire" }));
      if (busy) g.appendChild(s("line", { x1: pa.cx, y1: pa.cy, x2: pb.cx, y2: pb.cy, class: "flow" }));
      const parts = [];
      if (l.rate_bps) parts.push(fmtRate(l.rate_bps));
      if (l.delay_s) parts.push(fmtDelay(l.delay_s));
      if (l.loss) parts.push(`${+(l.loss * 100).toFixed(2)}% loss`);
      const label = parts.join(" · ") || "link";
      const mx = (pa.cx + pb.cx) / 2;
      // Put the label in the gap between the boxes, not under a node.
      let my = pa.cy;
      let mx2 = mx;
      if (pa.y !== pb.y) {
        // On the line, halfway across the gap between the two rows of boxes.
        my = (Math.max(pa.y, pb.y) + Math.min(pa.y, pb.y) + L.nodeH) / 2;
        mx2 = pa.cx + ((pb.cx - pa.cx) * (my - pa.cy)) / (pb.cy - pa.cy);
      }
      const lines = [label];
      if (busy) lines.push(`⇅ ${fmtRate(bps)}`);
      const w = Math.max(...lines.map((t) => t.length)) * 6.1 + 16;
      const hgt = 8 + lines.length * 14;
      const lg = s("g", { class: "link-label", transform: `translate(${mx2 - w / 2},${my - hgt / 2})` });
      lg.appendChild(s("rect", { width: w, height: hgt, rx: hgt / 2 }));
      lines.forEach((t, i) => lg.appendChild(s("text", { x: w / 2, y: 15 + i * 14, class: i ? "traffic" : "" }, t)));
      lg.appendChild(s("title", {}, `${l.a} — ${l.b}: ${label}`));
      g.appendChild(lg);
      layers.links.appendChild(g);
    }

    // Hosts
    clear(layers.hosts);
    const served = S.selected ? S.byId.get(S.selected)?.serves : null;
    for (const ho of topo.hosts || []) {
      const p = L.hostPos.get(ho.name);
      const np = L.pos.get(ho.node);
      if (!p || !np) continue;
      const g = s("g", {
        class: `host${served === ho.name ? " served" : ""}`,
        data: { host: ho.name, node: ho.node, kind: ho.kind },
      });
      const hx = p.x + p.w / 2;
      g.appendChild(s("path", { class: "tether", d: `M${np.cx},${np.y + np.h} C${np.cx},${p.y - 16} ${hx},${np.y + np.h + 16} ${hx},${p.y}` }));
      g.appendChild(s("rect", { x: p.x, y: p.y, width: p.w, height: p.h, rx: 9 }));
      g.appendChild(hostIcon(ho.kind, p.x + 10, p.y + 10));
      g.appendChild(s("text", { x: p.x + 34, y: p.y + 16, class: "host-name" }, truncate(ho.name, 13)));
      g.appendChild(s("text", { x: p.x + 34, y: p.y + 30, class: "host-sub" }, truncate(ho.ip || ho.kind, 16)));
      g.appendChild(s("title", {}, `${ho.name} (${ho.kind}) ${ho.ip || ""} ${ho.mac || ""} on ${ho.node}`));
      layers.hosts.appendChild(g);
    }

    // Nodes
    clear(layers.nodes);
    const reserved = reservedByNode();
    for (const n of topo.nodes) {
      const p = L.pos.get(n.name);
      const kc = kindClass(n.kind);
      const st = statusClass(n.status);
      const g = s("g", {
        class: `node kind-${kc} status-${st}`,
        data: { node: n.name, kind: n.kind, status: n.status },
      });
      g.appendChild(s("rect", { class: "box", x: p.x, y: p.y, width: p.w, height: p.h, rx: 12 }));
      g.appendChild(s("rect", { class: "band", x: p.x, y: p.y, width: 6, height: p.h, rx: 3 }));
      const badgeText = KIND_LABEL[n.kind] || String(n.kind || "?").toUpperCase();
      const bw = badgeText.length * 7 + 12;
      g.appendChild(s("rect", { class: "kind-badge", x: p.x + 14, y: p.y + 10, width: bw, height: 17, rx: 8.5 }));
      g.appendChild(s("text", { class: "kind-text", x: p.x + 14 + bw / 2, y: p.y + 22.5 }, truncate(badgeText, 6)));
      g.appendChild(s("text", { class: "node-name", x: p.x + 20 + bw, y: p.y + 23 }, truncate(n.name, 14)));
      g.appendChild(s("circle", { class: "status-dot", cx: p.x + p.w - 16, cy: p.y + 18, r: 5.5 }));
      const r = reserved.get(n.name) || { cpu: 0, mem: 0 };
      const sub = `${+r.cpu.toFixed(2)}/${n.cpu ?? "?"} cpu · ${fmtMem(r.mem)}/${fmtMem(n.memory_mb)}`;
      g.appendChild(s("text", { class: "node-sub", x: p.x + 14, y: p.y + 42 }, sub));
      g.appendChild(s("title", {}, `${n.name}: ${n.kind}, ${n.status}${n.endpoint ? `, agent ${n.endpoint}` : ""}`));
      const count = shown.filter((i) => i.node === n.name).length;
      if (count === 0) {
        g.appendChild(s("text", { class: "idle", x: p.x + p.w / 2, y: p.y + G.headH + 15 }, n.status === "up" ? "no instances" : n.status));
      } else if (count > L.slots) {
        const y = p.y + G.headH + (L.slots - 1) * (G.chipH + G.chipGap);
        g.appendChild(s("text", { class: "more", x: p.x + p.w / 2, y: y + 15 }, `+${count - L.slots + 1} more`));
      }
      g.addEventListener("click", () => focusNode(n.name));
      layers.nodes.appendChild(g);
    }

    drawMigrations(L);
    drawChips(L, shown);
    for (const { panel, layer } of overlays) {
      clear(layer);
      try {
        panel.draw(layer, L, ctx);
      } catch (err) {
        console.error("panel draw", panel.id, err);
      }
    }
  }

  function hostIcon(kind, x, y) {
    const g = s("g", { class: "host-icon", transform: `translate(${x},${y})` });
    if (kind === "laptop") {
      g.appendChild(s("rect", { x: 2, y: 1, width: 14, height: 10, rx: 1.5 }));
      g.appendChild(s("path", { d: "M0 14h18" }));
    } else if (kind === "tv") {
      g.appendChild(s("rect", { x: 0, y: 1, width: 18, height: 11, rx: 1.5 }));
      g.appendChild(s("path", { d: "M6 16h6M9 12v4" }));
    } else if (kind === "phone") {
      g.appendChild(s("rect", { x: 4, y: 0, width: 10, height: 17, rx: 2 }));
    } else if (kind === "camera" || kind === "usb") {
      g.appendChild(s("rect", { x: 0, y: 3, width: 18, height: 12, rx: 2 }));
      g.appendChild(s("circle", { cx: 9, cy: 9, r: 3.5 }));
    } else {
      g.appendChild(s("circle", { cx: 9, cy: 9, r: 7 }));
    }
    return g;
  }

  function reservedByNode() {
    const out = new Map();
    for (const i of S.instances) {
      if (!LIVE.has(i.state)) continue;
      const r = out.get(i.node) || { cpu: 0, mem: 0 };
      r.cpu += i.cpu || 0;
      r.mem += i.memory_mb || 0;
      out.set(i.node, r);
    }
    return out;
  }

  function drawMigrations(L) {
    clear(layers.migr);
    for (const m of S.migrations) {
      if (!["pending", "preparing", "aborting"].includes(m.phase)) continue;
      const a = L.pos.get(m.source);
      const b = L.pos.get(m.target);
      if (!a || !b) continue;
      // A quadratic curve bowed to one side; its midpoint carries the label.
      const dx = b.cx - a.cx;
      const dy = b.cy - a.cy;
      const len = Math.hypot(dx, dy) || 1;
      const bow = Math.min(110, len / 2.6);
      const cx = (a.cx + b.cx) / 2 + (dy / len) * bow;
      const cy = (a.cy + b.cy) / 2 - (Math.abs(dx) / len) * bow;
      // Start and end where the curve leaves/enters the boxes, not at their centres.
      const p0 = edgePoint(a, cx, cy);
      const p2 = edgePoint(b, cx, cy);
      const midX = 0.25 * p0.x + 0.5 * cx + 0.25 * p2.x;
      const midY = 0.25 * p0.y + 0.5 * cy + 0.25 * p2.y;
      const g = s("g", { class: "migration", data: { instance: m.instance, source: m.source, target: m.target } });
      g.appendChild(s("path", { d: `M${p0.x},${p0.y} Q${cx},${cy} ${p2.x},${p2.y}` }));
      g.appendChild(s("circle", { class: "start", cx: p0.x, cy: p0.y, r: 3.5 }));
      const ang = Math.atan2(p2.y - cy, p2.x - cx);
      const head = (d, da) => `${p2.x - d * Math.cos(ang + da)},${p2.y - d * Math.sin(ang + da)}`;
      g.appendChild(s("path", { class: "end", d: `M${p2.x},${p2.y} L${head(11, 0.45)} L${head(11, -0.45)} Z` }));
      const label = `moving ${truncate(instLabel(m.instance), 18)} · ${m.phase}`;
      const w = label.length * 6.1 + 16;
      const lg = s("g", { class: "migr-label", transform: `translate(${midX - w / 2},${midY - 11})` });
      lg.appendChild(s("rect", { width: w, height: 22, rx: 11 }));
      lg.appendChild(s("text", { x: w / 2, y: 15 }, label));
      g.appendChild(lg);
      layers.migr.appendChild(g);
    }
  }

  /** Where the segment from box p's centre towards (x, y) crosses its border. */
  function edgePoint(p, x, y) {
    const dx = x - p.cx;
    const dy = y - p.cy;
    if (!dx && !dy) return { x: p.cx, y: p.cy };
    const k = Math.min(dx ? p.w / 2 / Math.abs(dx) : Infinity, dy ? p.h / 2 / Math.abs(dy) : Infinity);
    return { x: p.cx + dx * Math.min(1, k), y: p.cy + dy * Math.min(1, k) };
  }

  function drawChips(L, shown) {
    const seen = new Set();
    const slotOf = new Map();
    const countOf = new Map();
    for (const i of shown) countOf.set(i.node, (countOf.get(i.node) || 0) + 1);
    for (const i of shown) {
      const p = L.pos.get(i.node);
      if (!p) continue;
      const k = slotOf.get(i.node) || 0;
      slotOf.set(i.node, k + 1);
      seen.add(i.id);
      let g = chips.get(i.id);
      const fresh = !g;
      if (fresh) {
        g = s("g", { class: "inst entering", data: { instanceId: i.id } });
        g.addEventListener("click", (ev) => {
          ev.stopPropagation();
          selectInstance(i.id);
        });
        layers.insts.appendChild(g);
        chips.set(i.id, g);
      }
      // When a node has more instances than slots, the last slot says "+N more".
      const hidden = countOf.get(i.node) > L.slots && k >= L.slots - 1;
      const x = p.x + 12;
      const y = p.y + G.headH + Math.min(k, L.slots - 1) * (G.chipH + G.chipGap);
      const prevNode = g.dataset.node;
      g.dataset.node = i.node;
      g.dataset.state = i.state;
      g.dataset.name = i.name || "";
      g.setAttribute("class", `inst state-${stateClass(i.state)}${i.id === S.selected ? " selected" : ""}${hidden ? " overflow" : ""}${fresh ? " entering" : ""}`);
      g.style.transform = `translate(${x}px, ${y}px)`;
      if (prevNode && prevNode !== i.node) {
        g.classList.add("moved");
        setTimeout(() => g.classList.remove("moved"), 1600);
      }
      clear(g);
      const w = G.nodeW - 24;
      g.appendChild(s("rect", { class: "chip", width: w, height: G.chipH, rx: 6 }));
      g.appendChild(s("circle", { class: "chip-dot", cx: 11, cy: G.chipH / 2, r: 4 }));
      g.appendChild(s("text", { class: "chip-name", x: 21, y: 15 }, truncate(i.name || i.id, 18)));
      g.appendChild(s("text", { class: "chip-state", x: w - 7, y: 15 }, i.state));
      g.appendChild(s("title", {}, `${i.name || i.id} (${i.descriptor}) ${i.state} on ${i.node}${i.ip ? `, ${i.ip}` : ""}`));
      if (fresh) requestAnimationFrame(() => requestAnimationFrame(() => g.classList.remove("entering")));
    }
    for (const [id, g] of chips) {
      if (seen.has(id)) continue;
      chips.delete(id);
      g.classList.add("leaving");
      setTimeout(() => g.remove(), 600);
    }
  }

  function focusNode(name) {
    const card = document.querySelector(`.node-card[data-node="${CSS.escape(name)}"]`);
    if (card) {
      card.scrollIntoView({ behavior: "smooth", block: "nearest" });
      card.classList.add("flash");
      setTimeout(() => card.classList.remove("flash"), 1200);
    }
  }

  function pulse(selector) {
    for (const el of document.querySelectorAll(selector)) {
      el.classList.remove("pulse");
      void el.getBoundingClientRect();
      el.classList.add("pulse");
    }
  }

  // ------------------------------------------------------------------ legend & stats

  function drawLegend() {
    const el = clear($("legend"));
    for (const k of KIND_ORDER) el.appendChild(h("span", { class: `lg kind-${k}` }, h("i"), KIND_LABEL[k]));
    el.appendChild(h("span", { class: "lg-sep" }));
    for (const st of ["up", "unreachable", "unknown"]) el.appendChild(h("span", { class: `lg status-${st}` }, h("i"), st));
  }

  function drawStats() {
    const nodes = S.topo?.nodes || [];
    const up = nodes.filter((n) => n.status === "up").length;
    const unreachable = nodes.filter((n) => n.status === "unreachable").length;
    const live = S.instances.filter((i) => LIVE.has(i.state));
    const running = live.filter((i) => i.state === "running").length;
    const el = clear($("stats"));
    const stat = (v, label, cls) => h("span", { class: `stat ${cls || ""}` }, h("b", {}, String(v)), ` ${label}`);
    if (S.topo) el.appendChild(stat(`${up}/${nodes.length}`, "nodes up", unreachable ? "warn" : ""));
    el.appendChild(stat(running, `running${live.length > running ? ` of ${live.length}` : ""}`, ""));
    if (S.topo) el.appendChild(stat((S.topo.hosts || []).length, "hosts", ""));
    el.appendChild(h("span", { class: "stat", id: "stat-events" }, h("b", {}, String(S.lastId)), " events"));
    $("topo-name").textContent = S.topo?.name || "";
    document.title = S.topo?.name ? `netfate · ${S.topo.name}` : "netfate · orchestrator";
  }

  // ------------------------------------------------------------------ instances table

  function badge(state) {
    return h("span", { class: `badge state-${stateClass(state)}`, data: { state } }, state);
  }

  /** Where an instance runs: its node (the operator's view), else its location class. */
  function where(i) {
    if (i.node !== undefined) return i.node;
    const loc = i.location || {};
    return [loc.tier || "edge", loc.near ? `near ${loc.near}` : ""].filter(Boolean).join(" ");
  }

  function drawInstances() {
    const tbody = clear(document.querySelector("#instances tbody"));
    const list = S.showGone ? S.instances : S.instances.filter((i) => i.state !== "gone");
    $("inst-count").textContent = list.length ? String(list.length) : "";
    $("inst-empty").hidden = list.length > 0;
    for (const i of list) {
      const tr = h(
        "tr",
        {
          class: i.id === S.selected ? "selected" : "",
          data: { instanceId: i.id, node: i.node, state: i.state },
          tabindex: 0,
          onclick: () => selectInstance(i.id),
          onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), selectInstance(i.id)),
        },
        h("td", { class: "name" }, i.name || "—"),
        h("td", { class: "mono dim" }, truncate(i.id, 12)),
        h("td", {}, i.descriptor),
        h("td", { class: "node" }, where(i)),
        h("td", {}, badge(i.state), i.state === "failed" && i.detail ? h("span", { class: "why" }, truncate(i.detail, 60)) : null),
        h("td", {}, i.serves || "—"),
        h("td", { class: "mono" }, i.ip || "—"),
        h("td", { class: "dim", title: isoTime(i.updated_at) }, fmtAgo(i.updated_at)),
      );
      tbody.appendChild(tr);
    }
  }

  // ------------------------------------------------------------------ instance detail

  let detailToken = 0;

  function selectInstance(id) {
    S.selected = id;
    $("detail").hidden = false;
    drawInstances();
    drawTopology();
    loadDetail(true);
  }

  async function loadDetail(scroll) {
    const id = S.selected;
    if (!id) return;
    const token = ++detailToken;
    let d;
    try {
      d = await api(`/instances/${encodeURIComponent(id)}`);
    } catch (err) {
      if (token === detailToken) renderDetailError(String(err));
      return;
    }
    if (token !== detailToken || S.selected !== id) return;
    renderDetail(d);
    if (scroll) $("detail").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  function renderDetailError(msg) {
    clear($("detail-body")).appendChild(h("p", { class: "error" }, msg));
  }

  function kv(k, v, cls) {
    return [h("dt", {}, k), h("dd", { class: cls || "" }, v === null || v === undefined || v === "" ? "—" : v)];
  }

  function renderDetail(d) {
    $("detail-title").textContent = `Instance ${d.name || d.id}`;
    const body = clear($("detail-body"));
    body.dataset.instanceId = d.id;
    const desc = S.descriptors.get(d.descriptor);
    const facts = h(
      "dl",
      { class: "facts" },
      kv("state", badge(d.state)),
      kv("id", d.id, "mono"),
      kv("function", desc ? `${d.descriptor} — ${desc.description || desc.function}` : d.descriptor),
      d.node !== undefined ? kv("node", d.node) : kv("location", where(d)),
      kv("serves", d.serves),
      kv("address", d.ip ? `${d.ip}  ${d.mac || ""}` : d.mac, "mono"),
      kv("limits", `${d.cpu ?? "?"} cpu · ${fmtMem(d.memory_mb)}`),
      kv("pid", d.pid, "mono"),
      kv("created", `${fmtTime(d.created_at, true)} (${fmtAgo(d.created_at)})`),
      d.detail ? kv("detail", d.detail, "pre") : null,
      d.config && Object.keys(d.config).length ? kv("config", JSON.stringify(d.config, null, 1), "pre mono") : null,
    );

    const tl = h("ol", { class: "timeline" });
    const trans = d.transitions || [];
    trans.forEach((t, idx) => {
      const prev = idx ? trans[idx - 1].at : d.created_at;
      tl.appendChild(
        h(
          "li",
          { class: `tl state-${stateClass(t.state)}`, data: { state: t.state } },
          h("span", { class: "tl-dot" }),
          h("time", { datetime: isoTime(t.at), title: isoTime(t.at) }, fmtTime(t.at, true)),
          h("span", { class: "tl-delta" }, idx || prev ? `+${fmtDuration(t.at - prev)}` : ""),
          h("span", { class: "tl-move" }, h("span", { class: "dim" }, t.previous || "∅"), " → ", badge(t.state)),
          h("span", { class: "tl-node" }, t.node),
          h("span", { class: "tl-reason" }, t.reason || ""),
        ),
      );
    });
    if (!trans.length) tl.appendChild(h("li", { class: "dim" }, "no transitions yet"));

    const migs = d.migrations || [];
    const mt = h("table", { class: "mini" });
    mt.appendChild(h("thead", {}, h("tr", {}, ["#", "from → to", "phase", "downtime", "state", "took", "reason"].map((c) => h("th", {}, c)))));
    const mtb = h("tbody");
    for (const m of migs) mtb.appendChild(migrationRow(m, false));
    mt.appendChild(mtb);

    body.appendChild(facts);
    body.appendChild(
      h(
        "div",
        { class: "detail-main" },
        h("h3", {}, `Transitions (${trans.length})`),
        tl,
        h("h3", {}, `Migrations (${migs.length})`),
        migs.length ? mt : h("p", { class: "dim" }, "never migrated"),
      ),
    );
  }

  function migrationRow(m, withInstance) {
    const took = m.finished_at && m.started_at ? fmtDuration(m.finished_at - m.started_at) : "…";
    return h(
      "tr",
      { data: { migration: m.id, instance: m.instance, phase: m.phase }, onclick: withInstance ? () => selectInstance(m.instance) : null },
      h("td", { class: "dim" }, String(m.id)),
      withInstance ? h("td", {}, instLabel(m.instance)) : null,
      h("td", {}, m.source, h("span", { class: "arrow" }, " → "), m.target),
      h("td", {}, h("span", { class: `badge phase-${["pending", "preparing", "aborting", "done", "failed"].includes(m.phase) ? m.phase : "other"}` }, m.phase)),
      h("td", { class: "num" }, m.downtime_ms === null || m.downtime_ms === undefined ? "—" : `${(+m.downtime_ms).toFixed(2)} ms`),
      h("td", { class: "num" }, fmtBytes(m.state_bytes)),
      withInstance ? h("td", { class: "dim", title: isoTime(m.started_at) }, fmtTime(m.started_at)) : h("td", { class: "dim" }, took),
      withInstance ? null : h("td", { class: "dim" }, m.reason || ""),
    );
  }

  function drawMigrationsTable() {
    const tbody = clear(document.querySelector("#migrations tbody"));
    $("mig-empty").hidden = S.migrations.length > 0;
    for (const m of S.migrations.slice(0, 50)) tbody.appendChild(migrationRow(m, true));
  }

  // ------------------------------------------------------------------ nodes

  function bar(label, used, total, unit) {
    const frac = total ? Math.min(1, used / total) : 0;
    const fill = h("span", { class: `fill${frac > 0.85 ? " hot" : ""}` });
    fill.style.width = `${(frac * 100).toFixed(1)}%`;
    return h("div", { class: "meter" }, h("span", { class: "m-label" }, label), h("span", { class: "m-bar" }, fill), h("span", { class: "m-val" }, unit));
  }

  function drawNodes() {
    const el = clear($("nodes"));
    const reserved = reservedByNode();
    for (const n of S.topo?.nodes || []) {
      const r = reserved.get(n.name) || { cpu: 0, mem: 0 };
      const res = n.resources || {};
      const count = S.instances.filter((i) => i.node === n.name && LIVE.has(i.state)).length;
      const links = Object.keys(res.links || {}).map((peer) => {
        const bps = S.linkBps.get(`${n.name}>${peer}`);
        return h("li", {}, h("span", {}, `→ ${peer}`), h("span", { class: "num" }, bps === undefined ? "—" : fmtRate(bps)));
      });
      el.appendChild(
        h(
          "article",
          { class: `node-card kind-${kindClass(n.kind)} status-${statusClass(n.status)}`, data: { node: n.name, status: n.status } },
          h(
            "header",
            {},
            h("span", { class: "kchip" }, KIND_LABEL[n.kind] || n.kind),
            h("b", {}, n.name),
            h("span", { class: `status status-${statusClass(n.status)}` }, n.status),
          ),
          bar("cpu", r.cpu, n.cpu, `${+r.cpu.toFixed(2)} / ${n.cpu ?? "?"}`),
          bar("mem", r.mem, n.memory_mb, `${fmtMem(r.mem)} / ${fmtMem(n.memory_mb)}`),
          h(
            "dl",
            { class: "nfacts" },
            kv("instances", String(count)),
            kv("inst. cpu", res.instance_cpu_pct === undefined ? "—" : `${res.instance_cpu_pct}%`),
            kv("inst. rss", res.instance_rss_mb === undefined ? "—" : fmtMem(res.instance_rss_mb)),
            kv("load 1m", res.loadavg_1m === undefined ? "—" : (+res.loadavg_1m).toFixed(2)),
          ),
          h(
            "footer",
            { class: "nfoot" },
            h("span", {}, `seen ${fmtAgo(n.last_seen)}`),
            n.endpoint ? h("span", {}, "agent ", h("span", { class: "mono" }, n.endpoint)) : h("span", {}, "no agent yet"),
          ),
          links.length ? h("ul", { class: "nlinks" }, links) : null,
        ),
      );
    }
  }

  // ------------------------------------------------------------------ events feed

  const onNode = (d) => (d.node === undefined ? "" : ` on ${d.node}`);

  function describe(ev) {
    const d = ev.data || {};
    const custom = describers.get(ev.kind);
    if (custom) {
      try {
        return String(custom(d, ctx));
      } catch (err) {
        /* fall through to the generic line */
      }
    }
    switch (ev.kind) {
      case "NodeRegistered":
        return `${d.node} is up (agent at ${d.endpoint || "?"})`;
      case "NodeUnreachable":
        return `${d.node} unreachable: silent for ${d.silent_for_s} s`;
      case "InstancePlaced":
        // A provider's or a user's events carry no node (views.event): none is named.
        return `${instLabel(d.instance)} placed${onNode(d)} by ${d.policy}${d.why ? `: ${d.why}` : ""}`;
      case "InstanceStateChanged":
        return `${instLabel(d.instance)} ${d.previous} → ${d.state}${onNode(d)}${d.reason ? ` (${d.reason})` : ""}`;
      case "InstanceMigrated":
        if (d.source === undefined) return `${instLabel(d.instance)} moved: downtime ${(+d.downtime_ms).toFixed(2)} ms`;
        return `${instLabel(d.instance)} moved ${d.source} → ${d.target}: downtime ${(+d.downtime_ms).toFixed(2)} ms, ${fmtBytes(d.state_bytes)} of state`;
      case "MigrationFailed":
        return `${instLabel(d.instance)} could not move ${d.source} → ${d.target}: ${d.reason}`;
      default:
        return truncate(JSON.stringify(d), 240);
    }
  }

  function category(kind) {
    if (kind === "NodeUnreachable" || kind === "MigrationFailed" || /Fail|Error|Denied|Lost/.test(kind)) return "bad";
    if (kind.startsWith("Node")) return "node";
    if (kind.startsWith("Migration") || kind === "InstanceMigrated") return "migr";
    if (kind.startsWith("Instance")) return "inst";
    return "other";
  }

  const feedEvents = new WeakMap(); // <li> -> event

  function feedItem(ev, live) {
    const d = ev.data || {};
    let cls = `ev cat-${category(ev.kind)}`;
    if (ev.kind === "InstanceStateChanged") cls += ` to-${stateClass(d.state)}`;
    if (live) cls += " new";
    const li = h(
      "li",
      { class: cls, data: { eventId: ev.id, kind: ev.kind, instance: d.instance || "", node: d.node || "" } },
      h("time", { datetime: isoTime(ev.at), title: isoTime(ev.at) }, fmtTime(ev.at)),
      h("span", { class: "kind" }, ev.kind),
      h("span", { class: "msg" }, describe(ev)),
    );
    feedEvents.set(li, ev);
    if (d.instance && !S.byId.has(d.instance)) li.dataset.unresolved = "1";
    if (d.instance) {
      li.classList.add("clickable");
      li.addEventListener("click", () => selectInstance(d.instance));
    }
    return li;
  }

  /** Events that named an instance before the page knew it: say its name now. */
  function resolveFeed() {
    for (const li of document.querySelectorAll("#feed li[data-unresolved]")) {
      const ev = feedEvents.get(li);
      if (!ev || !S.byId.has(ev.data.instance)) continue;
      delete li.dataset.unresolved;
      li.querySelector(".msg").textContent = describe(ev);
    }
  }

  function applyFilter(li) {
    const q = $("feed-filter").value.trim().toLowerCase();
    li.hidden = q !== "" && !li.textContent.toLowerCase().includes(q);
  }

  function addToFeed(ev, live) {
    const feed = $("feed");
    const li = feedItem(ev, live);
    applyFilter(li);
    feed.insertBefore(li, feed.firstChild);
    while (feed.childElementCount > FEED_MAX) feed.removeChild(feed.lastChild);
    if (live) setTimeout(() => li.classList.remove("new"), 2500);
  }

  // ------------------------------------------------------------------ event processing

  function processEvent(ev, live) {
    if (ev.id <= S.lastId) return;
    S.lastId = ev.id;
    const d = ev.data || {};
    // Immediate feedback before the refresh lands.
    if (ev.kind === "InstanceStateChanged" && S.byId.has(d.instance)) {
      const i = S.byId.get(d.instance);
      i.state = d.state;
      i.node = d.node || i.node;
    }
    addToFeed(ev, live);
    const counter = document.querySelector("#stat-events b");
    if (counter) counter.textContent = String(S.lastId);
    for (const fn of listeners.get(ev.kind) || []) {
      try {
        fn(ev, ctx);
      } catch (err) {
        console.error("listener of", ev.kind, err);
      }
    }
    if (live) {
      if (d.instance) pulse(`.inst[data-instance-id="${CSS.escape(d.instance)}"]`);
      if (d.node) pulse(`.node[data-node="${CSS.escape(d.node)}"]`);
      scheduleRefresh(d.instance && d.instance === S.selected);
    }
  }

  let catchingUp = null;
  const buffered = [];

  async function catchUp(live) {
    if (catchingUp) return catchingUp;
    catchingUp = (async () => {
      try {
        for (let guard = 0; guard < 20; guard++) {
          const batch = await api(`/events?after=${S.lastId}&limit=500`);
          for (const ev of batch) processEvent(ev, live);
          if (batch.length < 500) break;
        }
      } catch (err) {
        console.warn("catch-up failed", err);
      } finally {
        catchingUp = null;
      }
      const pending = buffered.splice(0);
      for (const ev of pending) handleStreamEvent(ev);
    })();
    return catchingUp;
  }

  function handleStreamEvent(ev) {
    if (catchingUp) {
      buffered.push(ev);
      return;
    }
    if (ev.id <= S.lastId) return;
    if (ev.id === S.lastId + 1) processEvent(ev, true);
    else catchUp(true); // a gap: events of kinds nobody listens for; read them all
  }

  function onStreamMessage(msg) {
    let ev;
    try {
      ev = JSON.parse(msg.data);
    } catch (err) {
      return;
    }
    if (typeof ev.id !== "number") return;
    handleStreamEvent(ev);
  }

  function setConn(state, label) {
    const el = $("conn");
    el.dataset.state = state;
    el.querySelector(".label").textContent = label;
  }

  let retry = 1000;

  function connect() {
    if (es) es.close();
    es = new EventSource(`${API}/events/stream?after=${S.lastId}`);
    for (const kind of listeners.keys()) es.addEventListener(kind, onStreamMessage);
    es.addEventListener("message", onStreamMessage);
    es.onopen = () => {
      retry = 1000;
      setConn("live", "live");
      catchUp(true);
    };
    es.onerror = () => {
      setConn("down", "reconnecting…");
      es.close();
      es = null;
      setTimeout(connect, retry);
      retry = Math.min(10000, retry * 2);
    };
  }

  /** The newest event id, by probing (the API has no "last N" read yet). */
  async function findTail() {
    const exists = async (after) => (await api(`/events?after=${after}&limit=1`)).length > 0;
    if (!(await exists(0))) return 0;
    let lo = 0;
    let hi = 1;
    while (await exists(hi)) {
      lo = hi;
      hi *= 2;
    }
    // exists(lo) is true (or lo = 0), exists(hi) is false: the last id is in (lo, hi].
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await exists(mid)) lo = mid;
      else hi = mid;
    }
    return hi;
  }

  // ------------------------------------------------------------------ refresh

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;
  let detailAgain = false;

  function scheduleRefresh(withDetail) {
    if (withDetail) detailAgain = true;
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, 120);
  }

  async function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      const q = S.showGone ? "?include_gone=true" : "";
      const operator = S.role === "operator";
      const [topo, instances, migrations] = await Promise.all([
        operator ? api("/topology") : null,
        api(`/instances${q}`),
        operator ? api("/migrations?limit=100") : [],
      ]);
      S.topo = topo;
      S.instances = instances;
      S.byId = new Map(instances.map((i) => [i.id, i]));
      S.migrations = migrations;
      if (instances.some((i) => !S.descriptors.has(i.descriptor))) await loadDescriptors();
      updateLinkRates(topo ? topo.nodes || [] : []);
      render();
      if (detailAgain || S.selected) {
        detailAgain = false;
        await loadDetail(false);
      }
    } catch (err) {
      console.warn("refresh failed", err);
      setConn("down", "API unreachable");
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh(false);
      }
    }
  }

  async function loadDescriptors() {
    if (S.role === "user") return; // the functions' catalogue is the operator's and providers'
    try {
      for (const d of await api("/descriptors")) S.descriptors.set(d.name, d);
    } catch (err) {
      console.warn("descriptors", err);
    }
  }

  function render() {
    drawStats();
    drawTopology();
    drawInstances();
    drawNodes();
    drawMigrationsTable();
    resolveFeed();
    for (const fn of refreshHooks) {
      try {
        fn(S);
      } catch (err) {
        console.error("panel refresh", err);
      }
    }
    document.body.dataset.ready = "1";
  }

  // ------------------------------------------------------------------ start

  /** A provider's or a user's page: only what is theirs (the module's doc). */
  function applyRole() {
    document.body.dataset.role = S.role;
    if (S.role === "operator") return;
    for (const sel of [".topo-card", ".nodes-card", ".mig-card"]) document.querySelector(sel).hidden = true;
    $("inst-where").textContent = "location";
    document.querySelector("main.grid").classList.add("own");
  }

  async function start() {
    if (window.netfateSession) {
      const who = await window.netfateSession.me();
      if (!who) return window.netfateSession.expired();
      S.role = who.role;
    }
    applyRole();
    started = true;
    drawLegend();
    for (const k of BUILTIN_KINDS) on(k);
    for (const p of panels) mountPanel(p);
    const closeDetail = () => {
      S.selected = null;
      $("detail").hidden = true;
      drawInstances();
      drawTopology();
    };
    $("detail-close").addEventListener("click", closeDetail);
    document.addEventListener("keydown", (e) => e.key === "Escape" && S.selected && closeDetail());
    $("show-gone").addEventListener("change", (e) => {
      S.showGone = e.target.checked;
      refresh();
    });
    $("feed-filter").addEventListener("input", () => {
      for (const li of $("feed").children) applyFilter(li);
    });
    await loadDescriptors();
    await refresh();
    try {
      const tail = await findTail();
      S.lastId = Math.max(0, tail - FEED_BACKLOG);
      await catchUp(false);
    } catch (err) {
      console.warn("event backlog", err);
    }
    connect();
    setInterval(() => {
      refresh();
      if (!catchingUp) catchUp(true);
    }, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
