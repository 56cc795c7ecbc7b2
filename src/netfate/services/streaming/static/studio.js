// The provider's app: schedule events, start and stop them, see where each flow goes
// (the acquirer's address and port) and what the acquirer said: recognition,
// bitrate, and refusals with their reasons.
(() => {
  const { $, h, say, api, qs, when, minutes } = window.streaming;

  // Who the provider is: the only place the studio decides it. Until sign-in exists
  // the provider says it (?provider= in the address, or the form, kept in this browser).
  function who() {
    const url = new URLSearchParams(location.search);
    return url.get("provider") || localStorage.getItem("streaming.provider") || "";
  }

  const button = (label, onclick, extra) => h("button", { type: "button", onclick, ...extra }, label);

  async function act(fn, done) {
    try {
      await fn();
      if (done) say(done, "ok");
    } catch (e) {
      say(String(e.message || e), "error");
    }
    refresh();
  }

  function flow(c) {
    const a = c.acquirer;
    const st = c.stream || {};
    const rec = st.recognised;
    const lines = [
      h("div", { class: "mono" }, `send ${a.protocol.toUpperCase()}/MPEG-TS to `,
        h("strong", { "data-acquirer": c.id }, `${a.address || "(starting)"}:${a.port}`),
        ` · acquirer at ${a.node}`),
      h("div", {}, `stream: ${st.state || "waiting"}` + (st.starts ? ` · started ${st.starts}×` : "") +
        (st.source ? ` · from ${st.source}` : "") +
        (st.bitrate_bps ? ` · ${(st.bitrate_bps / 1e6).toFixed(2)} Mbit/s` : "")),
    ];
    if (rec) {
      const codecs = (rec.streams || []).map((s) => `${s.kind} ${s.codec}`).join(", ");
      lines.push(h("div", {}, `recognised: ${rec.container} (${codecs})`));
    }
    for (const r of (st.refused || []).slice().reverse()) {
      lines.push(h("div", { class: "sapp-refused", "data-refused": r.reason },
        `refused ${when(r.at)}: ${r.detail || r.reason}` + (r.source ? ` (from ${r.source})` : "")));
    }
    return h("div", { class: "sapp-flow" }, ...lines);
  }

  let last = "";
  async function refresh() {
    const me = who();
    if (!me) {
      $("events").replaceChildren(h("p", { class: "dim" }, "say which provider you are (top right)"));
      return;
    }
    try {
      const evs = await api("GET", `/events?${qs({ provider: me })}`);
      const text = JSON.stringify(evs);
      if (text === last) return; // unchanged: keyboard focus stays where it is
      last = text;
      $("events").replaceChildren(...(evs.length ? evs.map((e) => h("article",
        { class: "sapp-item", "data-event": e.id },
        h("div", {}, h("strong", {}, e.title), " ", h("span", { class: `sapp-state s-${e.state}` }, e.state)),
        h("div", { class: "dim" }, `${when(e.start)} · ${minutes(e.duration_s)} · ${e.bitrate_kbps} kbit/s`),
        e.description ? h("p", {}, e.description) : null,
        e.content ? flow(e.content) : null,
        h("div", { class: "sapp-actions" },
          e.state === "scheduled" && button("Start", () => act(
            () => api("POST", `/events/${e.id}/start`), `${e.title} started`)),
          e.state === "started" && button("Stop", () => act(
            () => api("POST", `/events/${e.id}/stop`), `${e.title} stopped`)))))
        : [h("p", { class: "dim" }, "no events yet")]));
    } catch (e) {
      say(String(e.message || e), "error");
    }
  }

  $("who-provider").value = who();
  $("who").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const provider = $("who-provider").value.trim();
    try {
      await api("GET", `/app/me?${qs({ provider })}`);
      localStorage.setItem("streaming.provider", provider);
      history.replaceState(null, "", `?${qs({ provider })}`);
      say(`signed in as ${provider} (until sign-in exists, by name)`, "ok");
      last = "";
    } catch (e) {
      say(String(e.message || e), "error");
    }
    refresh();
  });
  $("schedule").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(() => api("POST", "/events", {
      provider: who(),
      title: $("ev-title").value.trim(),
      description: $("ev-description").value,
      start: new Date($("ev-start").value).getTime() / 1000,
      duration_s: Number($("ev-duration").value) * 60,
      bitrate_kbps: Number($("ev-bitrate").value),
    }), "event scheduled");
  });
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 2000);
})();
