// Who is signed in, and the sign-out button, on every page that has an element
// with id "session" (the dashboard, the owners' page, the firewall page).
// window.netfateSession:
//   me()       a promise of GET /api/v1/auth/me (null when not signed in)
//   csrf()     the web session's CSRF token (the netfate_csrf cookie)
//   expired()  go to the sign-in page, coming back here after (a 401 from the API)
"use strict";
(() => {
  function csrf() {
    const c = document.cookie.split("; ").find((x) => x.startsWith("netfate_csrf="));
    return c ? c.slice("netfate_csrf=".length) : "";
  }

  function expired() {
    location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
  }

  let mePromise = null;
  function me() {
    if (!mePromise) {
      mePromise = fetch("/api/v1/auth/me", { headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .catch(() => null);
    }
    return mePromise;
  }

  async function signOut() {
    try {
      await fetch("/api/v1/auth/session", { method: "DELETE", headers: { "X-CSRF-Token": csrf() } });
    } finally {
      location.assign("/signin");
    }
  }

  async function mount() {
    const el = document.getElementById("session");
    if (!el) return;
    const who = await me();
    if (!who) return;
    const name = document.createElement("span");
    name.className = "who";
    name.dataset.role = who.role;
    const b = document.createElement("b");
    b.textContent = who.name;
    name.append(b, ` (${who.role})`);
    const out = document.createElement("button");
    out.type = "button";
    out.id = "signout";
    out.textContent = "Sign out";
    out.addEventListener("click", signOut);
    el.replaceChildren(name, out);
    document.body.dataset.role = who.role;
  }

  window.netfateSession = { me, csrf, expired };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
