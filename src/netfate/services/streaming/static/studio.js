// The provider's app: schedule events (RTP/UDP, SRT or RTMP), start and stop them, see
// where each flow goes (the acquirer's address and port; for a started event the exact
// URL for OBS or ffmpeg, with its passphrase or stream key, from the provider-only
// /events/{id}/ingest) and what the acquirer said: recognition, bitrate, and refusals
// with their reasons.
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

  const PROTOCOLS = { "rtp-udp": "RTP/MPEG-TS over UDP", srt: "SRT", rtmp: "RTMP" };

  // The flow's URL and ffmpeg command (they carry its secret): fetched for this
  // provider's started events only, shown in the page, never logged or kept.
  const ingests = new Map();
  async function ingestOf(e) {
    try {
      ingests.set(e.id, await api("GET", `/events/${e.id}/ingest`));
    } catch (err) {
      ingests.set(e.id, { error: String(err.message || err) });
    }
  }

  function howTo(id) {
    const g = ingests.get(id);
    if (g && g.error) return h("div", { class: "dim" }, `its URL: ${g.error}`);
    if (!g || !g.url) return h("div", { class: "dim" }, "the acquirer is starting: its URL follows");
    const lines = [
      h("div", {}, "URL: ", h("code", { class: "mono", "data-url": id }, g.url)),
      h("div", {}, "ffmpeg: ", h("code", { class: "mono", "data-ffmpeg": id }, g.ffmpeg)),
    ];
    if (g.obs && g.obs.stream_key) {
      lines.push(h("div", {}, "OBS: server ", h("code", { class: "mono" }, g.obs.server),
        " · stream key ", h("code", { class: "mono", "data-key": id }, g.obs.stream_key)));
    } else if (g.obs) {
      lines.push(h("div", {}, "OBS: server ", h("code", { class: "mono" }, g.obs.server)));
    }
    return h("div", { class: "sapp-ingest" }, ...lines);
  }

  function flow(c) {
    const a = c.acquirer;
    const st = c.stream || {};
    const rec = st.recognised;
    const lines = [
      h("div", { class: "mono" }, `send ${PROTOCOLS[a.protocol] || a.protocol} to `,
        h("strong", { "data-acquirer": c.id }, `${a.address || "(starting)"}:${a.port}`),
        ` · acquirer at ${a.node}`),
      c.state === "live" ? howTo(c.event) : null,
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
      await Promise.all(evs.filter((e) => e.state === "started").map(ingestOf));
      const text = JSON.stringify([evs, [...ingests.entries()]]);
      if (text === last) return; // unchanged: keyboard focus stays where it is
      last = text;
      $("events").replaceChildren(...(evs.length ? evs.map((e) => h("article",
        { class: "sapp-item", "data-event": e.id },
        h("div", {}, h("strong", {}, e.title), " ", h("span", { class: `sapp-state s-${e.state}` }, e.state)),
        h("div", { class: "dim" }, `${when(e.start)} · ${minutes(e.duration_s)} · ${e.bitrate_kbps} kbit/s · ` +
          (PROTOCOLS[e.protocol] || e.protocol)),
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
      protocol: $("ev-protocol").value,
    }), "event scheduled");
  });
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 2000);
})();
