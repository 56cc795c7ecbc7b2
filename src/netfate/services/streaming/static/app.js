// The user's app: Discover (providers, schedules), Live (join, hls.js player), Record,
// MyShare (recordings, seekable VoD), Calendar (watched, reservations, reminders).
(() => {
  const { $, h, say, api, qs, when, minutes, tabs } = window.streaming;
  const REMIND_S = 5 * 60; // a reminder this long before a reserved start
  const RETRY_MS = 1000;
  const MAX_RETRIES = 60; // a new edge streamer needs a few seconds before its playlist

  // Who the user is: the only place the app decides it. The signed-in user, as the
  // server says (/app/me; an operator's page names whom it speaks for: ?user=); the
  // device the user watches on is its host (?host= or the form, kept in this browser),
  // which is also the device's label as a viewer (one user may watch on two devices).
  let signedIn = "";
  function who() {
    const url = new URLSearchParams(location.search);
    return {
      user: signedIn,
      host: url.get("host") || localStorage.getItem("streaming.host") || "",
    };
  }

  async function whoAmI(host) {
    const url = new URLSearchParams(location.search);
    const me = await api("GET", `/app/me?${qs({ user: url.get("user"), host })}`);
    signedIn = me.user || "";
    $("who-user").textContent = signedIn || "(not a viewer)";
    return me;
  }

  let providers = [];
  let watching = null; // {content, client, title}
  let playing = null; // the recording played in MyShare (its id)
  let reserved = [];
  const reminded = new Set();

  // ----------------------------------------------------------------- player

  const players = new Map(); // video element -> hls.js instance

  function stop(video) {
    const old = players.get(video);
    if (old) old.destroy();
    players.delete(video);
    video.removeAttribute("src");
    video.load();
  }

  function play(video, url, info, tries = 0) {
    stop(video);
    if (!(window.Hls && window.Hls.isSupported())) {
      if (video.canPlayType("application/vnd.apple.mpegurl")) { // native HLS (Safari)
        video.src = url;
        video.play().catch(() => {});
      } else info.textContent = "this browser can play neither MSE nor native HLS";
      return;
    }
    const Hls = window.Hls;
    const hls = new Hls({ enableWorker: false, lowLatencyMode: true });
    players.set(video, hls);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    hls.on(Hls.Events.ERROR, (_ev, d) => {
      if (!d.fatal || players.get(video) !== hls) return;
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (tries < MAX_RETRIES) { // not served yet (a streamer starting): again
        info.textContent = `waiting for the stream (${d.details})`;
        setTimeout(() => players.get(video) === hls && play(video, url, info, tries + 1), RETRY_MS);
      } else {
        info.textContent = `cannot play: ${d.details}`;
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  // ----------------------------------------------------------------- actions

  function need() {
    const w = who();
    if (!w.user) throw new Error("sign in as a viewer first");
    return w;
  }

  async function act(fn) {
    try {
      await fn();
    } catch (e) {
      say(String(e.message || e), "error");
    }
    await refresh();
  }

  const watch = (ev) => act(async () => {
    const w = need();
    if (!w.host) throw new Error("say which device you watch on (its host name)");
    if (watching) await leave();
    // The viewer is the signed-in user; the server labels the device by its host.
    const a = await api("POST", `/contents/${ev.content.id}/viewers`, { host: w.host });
    watching = { content: ev.content.id, client: a.client, title: ev.title };
    $("player-title").textContent = ev.title;
    $("player-box").hidden = false;
    $("player-info").textContent =
      `edge streamer ${a.streamer} on ${a.node} (case ${a.case}: ${a.why})`;
    play($("player"), a.hls, $("player-info"));
    say(`watching ${ev.title}`, "ok");
    show("live");
  });

  async function leave() {
    if (!watching) return;
    const { content, client } = watching;
    watching = null;
    stop($("player"));
    $("player-box").hidden = true;
    await api("DELETE", `/contents/${content}/viewers/${encodeURIComponent(client)}`)
      .catch(() => {}); // already gone (the event ended)
  }

  // A recording plays through the edge streamer the back-end picks for this device's
  // PE (the answer's vod URL carries the user's token); the previous playback ends.
  const playRecording = (w, r) => act(async () => {
    if (!w.host) throw new Error("say which device you watch on (its host name)");
    await stopRecording();
    const a = await api("POST", r.play, { host: w.host });
    playing = r.id;
    $("vod-title").textContent = r.title || `recording ${r.id}`;
    $("vod-box").hidden = false;
    $("vod-info").textContent = `edge streamer ${a.streamer} on ${a.node}, stored at ` +
      `${a.stored_at} (case ${a.case}: ${a.why})`;
    play($("vod"), a.vod, $("vod-info"));
  });

  async function stopRecording() {
    if (playing === null) return;
    const rid = playing;
    playing = null;
    stop($("vod"));
    await api("DELETE", `/recordings/${rid}/play`).catch(() => {}); // already ended
  }

  const record = (ev) => act(async () => {
    const w = need();
    await api("POST", "/recordings", { user: w.user, event: ev.id });
    say(`recording ${ev.title}: it will be in MyShare`, "ok");
  });

  const reserve = (ev) => act(async () => {
    const w = need();
    // where the user watches from: the back-end pre-starts a branch there before the start
    await api("POST", "/reservations", { user: w.user, event: ev.id, ...(w.host ? { host: w.host } : {}) });
    say(`reserved ${ev.title}`, "ok");
  });

  // ----------------------------------------------------------------- views

  const events = () => providers.flatMap((p) => p.events.map((e) => ({ ...e, who: p.title })));

  function eventRow(ev, buttons) {
    return h("article", { class: "sapp-item" },
      h("div", {}, h("strong", {}, ev.title), " ", h("span", { class: `sapp-state s-${ev.state}` }, ev.state)),
      h("div", { class: "dim" }, `${ev.who || ev.provider_title || ev.provider} · ${when(ev.start)}` +
        (ev.duration_s ? ` · ${minutes(ev.duration_s)}` : "")),
      ev.description ? h("p", {}, ev.description) : null,
      h("div", { class: "sapp-actions" }, ...buttons.filter(Boolean)));
  }

  const button = (label, onclick, extra) => h("button", { type: "button", onclick, ...extra }, label);

  function drawDiscover() {
    const list = providers.map((p) => h("section", { class: "sapp-provider" },
      h("h3", {}, p.title, " ", h("span", { class: "dim" }, `(${p.name}, at ${p.pe})`)),
      p.events.length ? p.events.map((e) => eventRow({ ...e, who: p.title }, [
        e.state === "started" && button("Watch", () => watch(e)),
        (e.state === "scheduled" || e.state === "started") && button("Record", () => record(e)),
        e.state === "scheduled" && button("Reserve", () => reserve(e)),
      ])) : h("p", { class: "dim" }, "nothing scheduled")));
    $("providers").replaceChildren(...(list.length ? list : [h("p", { class: "dim" }, "no providers yet")]));
  }

  function drawLive() {
    const live = events().filter((e) => e.state === "started");
    $("live-list").replaceChildren(...(live.length
      ? live.map((e) => eventRow(e, [button(watching && watching.content === e.content.id
        ? "Watching" : "Watch", () => watch(e), { "data-event": e.id })]))
      : [h("p", { class: "dim" }, "nothing is live now")]));
  }

  function drawRecord() {
    const open = events().filter((e) => e.state === "scheduled" || e.state === "started");
    $("record-list").replaceChildren(...(open.length
      ? open.map((e) => eventRow(e, [button("Record", () => record(e), { "data-event": e.id })]))
      : [h("p", { class: "dim" }, "no live or coming event")]));
  }

  async function drawMyShare(w) {
    const recs = await api("GET", `/app/recordings?${qs({ user: w.user })}`);
    if (!changed("recordings", recs)) return;
    $("recordings").replaceChildren(...(recs.length ? recs.map((r) => {
      const f = r.recorded || {};
      const size = f.octets != null ? `${(f.octets / 1e6).toFixed(1)} MB` : "";
      const dur = f.duration_s != null ? `${f.duration_s.toFixed(0)} s` : "";
      const state = r.state === "requested" ? "recording" : "stopped";
      return h("article", { class: "sapp-item", "data-recording": r.id },
        h("div", {}, h("strong", {}, r.title || `event ${r.event}`), " ",
          h("span", { class: `sapp-state s-${state}` }, state)),
        h("div", { class: "dim" }, [r.provider_title, when(r.created_at), dur, size,
          f.stop_reason && f.stop_reason !== "requested" ? `stopped: ${f.stop_reason}` : ""]
          .filter(Boolean).join(" · ")),
        h("div", { class: "sapp-actions" },
          r.play && f.segments ? button("Play", () => playRecording(w, r))
            : h("span", { class: "dim" }, "nothing recorded yet"),
          r.state === "requested" && button("Stop recording", () => act(async () => {
            await api("DELETE", `/recordings/${r.id}`);
          })),
          button("Delete", () => act(async () => {
            await api("DELETE", `/app/recordings/${r.id}?${qs({ user: w.user })}`);
            say("recording deleted", "ok");
          }))));
    }) : [h("p", { class: "dim" }, "no recordings yet: record an event")]));
    const q = recs.find((r) => r.quota && r.quota.bytes);
    if (q) {
      $("recordings").append(h("p", { class: "dim" },
        `space used: ${(q.quota.used / 1e6).toFixed(1)} of ${(q.quota.bytes / 1e6).toFixed(0)} MB`));
    }
  }

  async function drawCalendar(w) {
    const byId = new Map(events().map((e) => [e.id, e]));
    reserved = (await api("GET", `/reservations?${qs({ user: w.user })}`))
      .map((r) => ({ ...r, ev: byId.get(r.event) })).filter((r) => r.ev);
    if (changed("reserved", reserved)) $("reserved").replaceChildren(...(reserved.length ? reserved.map((r) => eventRow(r.ev, [
      button("Cancel", () => act(async () => { await api("DELETE", `/reservations/${r.id}`); })),
    ])) : [h("p", { class: "dim" }, "no reservations")]));
    const seen = await api("GET", `/app/watched?${qs({ user: w.user })}`);
    if (!changed("watched", seen)) return;
    $("watched").replaceChildren(...(seen.length ? seen.map((e) => h("article", { class: "sapp-item" },
      h("strong", {}, e.title || `event ${e.event}`),
      h("div", { class: "dim" }, `${e.provider_title || ""} · watched ${when(e.joined_at)}`)))
      : [h("p", { class: "dim" }, "nothing watched yet")]));
  }

  // A reminder a few minutes before a reserved start: a Web Notification where the
  // page may show one, an in-page one otherwise.
  function remind() {
    const now = Date.now() / 1000;
    for (const r of reserved) {
      const left = r.ev.start - now;
      if (r.ev.state !== "scheduled" || left > REMIND_S || left < -60 || reminded.has(r.id)) continue;
      reminded.add(r.id);
      const text = `${r.ev.title} starts ${left > 0 ? `in ${Math.ceil(left / 60)} min` : "now"}`;
      if ("Notification" in window && Notification.permission === "granted") {
        new Notification("netfate live", { body: text }); // eslint-disable-line no-new
      }
      const box = $("reminder");
      box.replaceChildren(h("span", {}, text), button("Dismiss", () => { box.hidden = true; }));
      box.hidden = false;
    }
  }

  // Redraw a list only when what it shows changed: keyboard focus stays where it is.
  const drawn = new Map();
  function changed(key, data) {
    const text = JSON.stringify(data);
    if (drawn.get(key) === text) return false;
    drawn.set(key, text);
    return true;
  }

  async function refresh() {
    const w = who();
    try {
      providers = await api("GET", "/providers");
      if (changed("providers", [providers, watching && watching.content])) {
        drawDiscover();
        drawLive();
        drawRecord();
      }
      if (w.user) {
        await drawMyShare(w);
        await drawCalendar(w);
        remind();
      }
    } catch (e) {
      say(String(e.message || e), "error");
    }
  }

  const show = tabs(() => refresh());

  $("who-host").value = who().host;
  $("who").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const host = $("who-host").value.trim();
    try {
      const me = await whoAmI(host);
      localStorage.setItem("streaming.host", host);
      const url = new URLSearchParams(location.search);
      history.replaceState(null, "", `?${qs({ user: url.get("user"), host })}`);
      say(`hello ${me.user}${me.pe ? `, you are at ${me.pe}` : ""}`, "ok");
    } catch (e) {
      say(String(e.message || e), "error");
    }
    refresh();
  });
  $("leave").addEventListener("click", () => act(leave));
  $("notify").addEventListener("click", async () => {
    if (!("Notification" in window)) return say("this browser has no notifications: reminders show here", "");
    const p = await Notification.requestPermission();
    say(p === "granted" ? "reminders will come as notifications" : "reminders will show on this page", "ok");
  });
  window.addEventListener("pagehide", () => {
    if (watching) leave();
    if (playing !== null) stopRecording();
  });
  whoAmI(who().host)
    .catch(() => whoAmI("")) // a host this run does not know: the user still signed in
    .catch((e) => say(String(e.message || e), "error"))
    .then(refresh);
  setInterval(() => { if (!document.hidden) refresh(); }, 5000);
})();
