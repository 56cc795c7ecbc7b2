// The user's page, behind sign-in (the platform's web session, session.js): edit the
// rule set, save it whole (a change carries the session's CSRF token).
// Everything from the server is put in the page as text, never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const API = "/api/v1/firewall/me/rules";
  const CHOICES = {
    action: ["allow", "deny"], direction: ["in", "out", "both"],
    proto: ["any", "tcp", "udp", "icmp"],
  };
  let lastNode = null;

  function say(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.className = kind || "";
  }

  function select(name, value) {
    const s = document.createElement("select");
    s.name = name;
    for (const v of CHOICES[name]) {
      const o = document.createElement("option");
      o.textContent = v;
      o.value = v;
      if (v === value) o.selected = true;
      s.append(o);
    }
    return s;
  }

  function input(name, value, size) {
    const i = document.createElement("input");
    i.name = name;
    i.value = value == null ? "" : String(value);
    i.maxLength = size;
    return i;
  }

  function row(rule) {
    const tr = document.createElement("tr");
    const cells = [select("action", rule.action || "deny"),
      select("direction", rule.direction || "out"), select("proto", rule.proto || "tcp"),
      input("port", rule.port, 5), input("address", rule.address, 43),
      input("comment", rule.comment, 80)];
    for (const c of cells) { const td = document.createElement("td"); td.append(c); tr.append(td); }
    const rm = document.createElement("button");
    rm.type = "button";
    rm.textContent = "remove";
    rm.addEventListener("click", () => tr.remove());
    const td = document.createElement("td");
    td.append(rm);
    tr.append(td);
    return tr;
  }

  function show(data) {
    lastNode = data.access_node;
    $("who").textContent = `Signed in as ${data.user}` +
      (data.access_node ? `, connected at ${data.access_node}` : ", not connected now") +
      ` · rule set version ${data.version}`;
    $("default_in").value = data.rules.default_in || "deny";
    $("default_out").value = data.rules.default_out || "allow";
    const body = $("rules").querySelector("tbody");
    body.replaceChildren(...(data.rules.rules || []).map(row));
    $("editor").hidden = false;
  }

  function collect() {
    const rules = [];
    for (const tr of $("rules").querySelectorAll("tbody tr")) {
      const get = (n) => tr.querySelector(`[name=${n}]`).value.trim();
      const r = { action: get("action"), direction: get("direction"), proto: get("proto") };
      // A port is sent as typed: the server validates it and says what is wrong.
      if (get("port")) r.port = /^\d+$/.test(get("port")) ? Number(get("port")) : get("port");
      if (get("address")) r.address = get("address");
      if (get("comment")) r.comment = get("comment");
      rules.push(r);
    }
    return { default_in: $("default_in").value, default_out: $("default_out").value, rules };
  }

  const session = window.netfateSession;

  async function call(method, body) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = session.csrf();
    const r = await fetch(API, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (r.status === 401) session.expired(); // signed out, or the session ended
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) throw new Error((data && data.detail) || `HTTP ${r.status}`);
    return data;
  }

  async function load() {
    try {
      show(await call("GET"));
      say("", "");
    } catch (e) {
      $("editor").hidden = true;
      say(e.message, "error");
    }
  }
  $("add").addEventListener("click", () => $("rules").querySelector("tbody").append(row({})));
  $("save").addEventListener("click", async () => {
    try {
      const data = await call("PUT", collect());
      show({ ...data, access_node: lastNode });
      say(`Saved: version ${data.version}. Your firewall applies it within seconds.`, "ok");
    } catch (e) {
      say(`Not saved, your rules are unchanged: ${e.message}`, "error");
    }
  });
  load();
})();
