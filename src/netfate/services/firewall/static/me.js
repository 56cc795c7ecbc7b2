// The user's page, behind sign-in (the platform's web session, session.js): edit the
// rule set, save it whole (a change carries the session's CSRF token). An account
// with no firewall user of its name signs in below with the login page's name and
// password (HTTP Basic to the API) instead.
// Everything from the server is put in the page as text, never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const API = "/api/v1/firewall/me/rules";
  const CHOICES = {
    action: ["allow", "deny"], direction: ["in", "out", "both"],
    proto: ["any", "tcp", "udp", "icmp"],
  };
  let lastNode = null;
  let auth = null; // HTTP Basic: the portal's credentials, when the account has no firewall

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
    if (auth) headers.Authorization = auth;
    else if (method !== "GET") headers["X-CSRF-Token"] = session.csrf();
    const r = await fetch(API, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (r.status === 401 && !auth) session.expired(); // signed out, or the session ended
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.detail) || `HTTP ${r.status}`);
      err.status = r.status;
      throw err;
    }
    return data;
  }

  async function load() {
    try {
      show(await call("GET"));
      say("", "");
    } catch (e) {
      $("editor").hidden = true;
      if (e.status === 404) {
        $("signin").hidden = false; // no firewall user of the account's name
        say(`${e.message}: sign in with the name and password of the login page.`, "");
      } else {
        say(e.message, "error");
      }
    }
  }

  $("signin").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    auth = "Basic " + btoa(unescape(encodeURIComponent(`${$("user").value}:${$("password").value}`)));
    try {
      show(await call("GET"));
      $("signin").hidden = true;
      say("", "");
    } catch (e) {
      auth = null;
      $("editor").hidden = true;
      say(e.message, "error");
    }
  });
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
