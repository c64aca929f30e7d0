// The setup portal. The link's token is in the URL fragment (never sent to a server by the
// browser); it is read once, removed from the address bar, and sent in an Authorization header.
// All text from the server is set with textContent: nothing is parsed as HTML.
"use strict";

(function () {
  const token = decodeURIComponent((location.hash || "").slice(1));
  if (location.hash) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  const $ = (id) => document.getElementById(id);
  const apiRoot = document.querySelector('meta[name="portal-api"]').content;
  let tenantUrl = "";
  let tokenEndpoint = "";
  let timer = null;

  async function api(method, path, body) {
    const r = await fetch(apiRoot + path, {
      method,
      headers: Object.assign({ Authorization: "Portal " + token }, body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    if (!r.ok) {
      const err = new Error((data && data.detail) || "HTTP " + r.status);
      err.status = r.status;
      throw err;
    }
    return data;
  }

  function invalid(reason) {
    $("app").hidden = true;
    $("invalid").hidden = false;
    $("who").textContent = "Setup link not valid";
    if (reason) $("invalid-reason").textContent = reason;
    if (timer) clearInterval(timer);
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null || text === "" ? "—" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // narrow screens show each row as a card: every cell is labelled with its column header
  function label(table) {
    const heads = Array.from(table.tHead.rows[0].cells, (th) => th.textContent);
    for (const row of table.tBodies[0].rows) {
      Array.from(row.cells).forEach((td, i) => { td.dataset.label = heads[i] || ""; });
    }
  }

  // dates in the reader's own language and time zone, the zone named (an IT admin compares
  // them with the identity provider's logs)
  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  function when(t) {
    if (!t) return "—";
    const d = new Date(t);
    return isNaN(d) ? t : dateFormat.format(d);
  }

  async function loadKeys() {
    const { keys } = await api("GET", "/keys");
    const body = $("keys").tBodies[0];
    body.replaceChildren();
    for (const k of keys) {
      const row = document.createElement("tr");
      cell(row, k.id, "mono id");
      cell(row, k.role);
      cell(row, when(k.created));
      cell(row, when(k.lastUsed));
      cell(row, k.expires ? when(k.expires) : "never");
      cell(row, k.revoked ? "revoked" : "active");
      const td = cell(row, "");
      td.textContent = "";
      if (!k.revoked && !k.manageable) {
        td.textContent = "managed by your operator";
        td.className = "muted";
      } else if (!k.revoked) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "danger";
        b.textContent = "Revoke";
        b.setAttribute("aria-label", "Revoke token " + k.id);
        b.addEventListener("click", async () => {
          if (!confirm("Revoke token " + k.id + "? The identity provider using it stops provisioning.")) return;
          await api("DELETE", "/keys/" + encodeURIComponent(k.id));
          await loadKeys();
        });
        td.appendChild(b);
      }
      body.appendChild(row);
    }
    label($("keys"));
  }

  // a tenant with a maximum key lifetime offers no "never", nothing longer, and the maximum
  function lifetimes(max) {
    if (!max) return;
    const select = $("expiry");
    for (const o of Array.from(select.options)) {
      if (o.value === "" || Number(o.value) > max) o.remove();
    }
    if (!Array.from(select.options).some((o) => Number(o.value) === max)) {
      select.add(new Option(max + " days (the longest allowed)", String(max)));
    }
    select.value = String(Math.min(365, max));
    if (!select.value) select.value = String(max);
  }

  async function generate() {
    const days = $("expiry").value;
    const k = await api("POST", "/keys", { expiresInDays: days ? Number(days) : null });
    $("token-value").value = k.token;
    $("test-token").value = k.token;
    $("new-token").hidden = false;
    $("token-value").focus();
    $("token-value").select();
    await loadKeys();
  }

  function oauthMode() {
    return document.querySelector('input[name="auth"]:checked').value === "oauth";
  }

  function showMode() {
    const oauth = oauthMode();
    $("oauth-panel").hidden = !oauth;
    $("token-panel").hidden = oauth;
    $("test-oauth-rows").hidden = !oauth;
    $("test-token-row").hidden = oauth;
    if (oauth) loadClients().catch(fail);
  }

  async function loadClients() {
    const { clients } = await api("GET", "/oauth");
    const body = $("secrets").tBodies[0];
    body.replaceChildren();
    const mine = clients.filter((c) => c.manageable && !c.revoked);
    if (mine.length && !$("client-id").value) $("client-id").value = mine[mine.length - 1].clientId;
    for (const c of clients) {
      for (const s of c.secrets) {
        const row = document.createElement("tr");
        cell(row, c.clientId, "mono id");
        cell(row, s.id, "mono id");
        cell(row, when(s.created));
        cell(row, when(s.expires));
        cell(row, c.revoked ? "revoked" : s.state);
        const td = cell(row, "");
        td.textContent = "";
        if (!c.manageable) {
          td.textContent = "managed by your operator";
          td.className = "muted";
        } else if (s.state === "active" && !c.revoked) {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "danger";
          b.textContent = "Revoke";
          b.setAttribute("aria-label", "Revoke client secret " + s.id);
          b.addEventListener("click", async () => {
            if (!confirm("Revoke client secret " + s.id + "? An identity provider using it stops provisioning.")) return;
            await api("DELETE", "/oauth/" + encodeURIComponent(s.id));
            await loadClients();
          });
          td.appendChild(b);
        }
        body.appendChild(row);
      }
    }
    label($("secrets"));
  }

  async function generateSecret() {
    const made = await api("POST", "/oauth", { expiresInDays: Number($("secret-expiry").value) });
    $("client-id").value = made.clientId;
    $("secret-value").value = made.clientSecret;
    $("test-client-id").value = made.clientId;
    $("test-client-secret").value = made.clientSecret;
    $("new-secret").hidden = false;
    $("secret-value").focus();
    $("secret-value").select();
    await loadClients();
  }

  // Entra's first step with OAuth: the client secret exchanged for an access token
  async function exchange(list) {
    const id = $("test-client-id").value.trim();
    const secret = $("test-client-secret").value.trim();
    const li = document.createElement("li");
    const name = "Exchange the client secret for an access token (OAuth 2.0 client credentials)";
    list.appendChild(li);
    if (!id || !secret) {
      li.className = "fail";
      li.textContent = "Generate a client secret first, or paste a client identifier and secret.";
      return null;
    }
    const form = new URLSearchParams({ grant_type: "client_credentials", client_id: id, client_secret: secret });
    const started = performance.now();
    try {
      const r = await fetch(tokenEndpoint, { method: "POST", body: form, cache: "no-store", credentials: "omit" });
      const body = await r.json().catch(() => null);
      const ms = Math.round(performance.now() - started);
      const ok = r.status === 200 && body && body.access_token;
      li.className = ok ? "ok" : "fail";
      li.textContent = (ok ? "✓ " : "✗ ") + name + " — HTTP " + r.status + (body && body.error_description ? ": " + body.error_description : "") + " (" + ms + " ms)";
      return ok ? body.access_token : null;
    } catch (e) {
      li.className = "fail";
      li.textContent = "✗ " + name + " — no answer: " + e.message;
      return null;
    }
  }

  // What Entra ID's Test Connection sends (and Okta's connector test), in order.
  function testSteps() {
    const probe = (crypto.randomUUID && crypto.randomUUID()) || String(Math.random()).slice(2);
    const q = (f) => encodeURIComponent(f);
    return [
      { name: "Look up a user that does not exist (Entra ID)", path: "/Users?filter=" + q('userName eq "' + probe + '"'), empty: true },
      { name: "Look up a group that does not exist (Entra ID)", path: "/Groups?excludedAttributes=members&filter=" + q('displayName eq "' + probe + '"'), empty: true },
      { name: "Read the first page of users (Okta)", path: "/Users?startIndex=1&count=1" },
      { name: "Read the service's capabilities", path: "/ServiceProviderConfig" },
    ];
  }

  async function runTest() {
    const list = $("test-steps");
    list.replaceChildren();
    const key = oauthMode() ? await exchange(list) : $("test-token").value.trim();
    if (oauthMode() && !key) return;
    if (!key) {
      const li = document.createElement("li");
      li.className = "fail";
      li.textContent = "Generate a token first, or paste one.";
      list.appendChild(li);
      return;
    }
    for (const step of testSteps()) {
      const li = document.createElement("li");
      li.textContent = step.name + " … ";
      list.appendChild(li);
      const started = performance.now();
      let ok = false;
      let note = "";
      try {
        const r = await fetch(tenantUrl + step.path, { headers: { Authorization: "Bearer " + key }, cache: "no-store", credentials: "omit" });
        const body = await r.json().catch(() => null);
        ok = r.status === 200 && (!step.empty || (body && body.totalResults === 0));
        note = "HTTP " + r.status + (body && body.detail ? ": " + body.detail : "");
      } catch (e) {
        note = "no answer: " + e.message;
      }
      const ms = Math.round(performance.now() - started);
      li.className = ok ? "ok" : "fail";
      li.textContent = (ok ? "✓ " : "✗ ") + step.name + " — " + note + " (" + ms + " ms)";
      if (!ok) break;
    }
  }

  async function loadActivity() {
    const params = new URLSearchParams();
    if ($("failures-only").checked) params.set("failures", "only");
    const f = $("filter").value.trim();
    if (f) params.set("q", f);
    const data = await api("GET", "/activity?" + params.toString());
    const c = data.counts;
    const dl = $("counts");
    dl.replaceChildren();
    const add = (k, v) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dl.append(dt, dd);
    };
    add("Active users", c.usersActive);
    add("Inactive users", c.usersInactive);
    add("Groups", c.groups);
    for (const [idp, t] of Object.entries(c.lastRequestByIdp || {})) add("Last request from " + idp, when(t));
    const body = $("activity").tBodies[0];
    body.replaceChildren();
    for (const e of data.entries) {
      const row = document.createElement("tr");
      if (e.status >= 400) row.className = "failed";
      cell(row, when(e.time));
      cell(row, e.unauthenticated ? "unknown sender (wrong secret)" : e.idp);
      cell(row, e.method + " " + e.path, "mono");
      cell(row, e.status + (e.scimType ? " " + e.scimType : ""));
      const extra = e.undeclaredExtensions && e.undeclaredExtensions.length ? " (dropped: " + e.undeclaredExtensions.join(", ") + ")" : "";
      cell(row, (e.detail || "") + extra);
      cell(row, e.resourceId, "mono id");
      body.appendChild(row);
    }
    label($("activity"));
    $("activity-note").textContent = data.entries.length + " entries, updated " + new Date().toLocaleTimeString();
  }

  function autoRefresh() {
    if (timer) clearInterval(timer);
    timer = $("auto").checked ? setInterval(() => loadActivity().catch(fail), 15000) : null;
  }

  function fail(e) {
    if (e && (e.status === 401 || e.status === 403)) invalid(e.message);
    else $("activity-note").textContent = "Could not load: " + (e && e.message);
  }

  async function copy(ev) {
    const input = $(ev.currentTarget.dataset.copy);
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      ev.currentTarget.textContent = "Copied";
    } catch (_) {
      document.execCommand("copy");
    }
  }

  async function start() {
    if (!token) return invalid("This page opens from a setup link, which carries its key after the '#'.");
    let s;
    try {
      s = await api("GET", "/session");
    } catch (e) {
      return invalid(e.message);
    }
    tenantUrl = s.tenantUrl;
    tokenEndpoint = s.tokenEndpoint;
    $("token-endpoint").value = s.tokenEndpoint;
    $("who").textContent = (s.name || s.tenant) + " — link valid until " + when(s.expiresAt);
    $("tenant-url").value = s.tenantUrl;
    // Entra ID and Okta reach a Tenant URL only over public HTTPS
    $("url-warning").hidden = /^https:\/\//i.test(s.tenantUrl);
    lifetimes(s.maxKeyLifetimeDays);
    $("app").hidden = false;
    for (const b of document.querySelectorAll("[data-copy]")) b.addEventListener("click", copy);
    $("generate").addEventListener("click", () => generate().catch(fail));
    $("generate-secret").addEventListener("click", () => generateSecret().catch(fail));
    for (const r of document.querySelectorAll('input[name="auth"]')) r.addEventListener("change", showMode);
    $("run-test").addEventListener("click", () => runTest().catch(fail));
    $("refresh").addEventListener("click", () => loadActivity().catch(fail));
    $("failures-only").addEventListener("change", () => loadActivity().catch(fail));
    $("filter").addEventListener("input", () => loadActivity().catch(fail));
    $("auto").addEventListener("change", autoRefresh);
    await Promise.all([loadKeys(), loadActivity()]).catch(fail);
    autoRefresh();
  }

  // a new link pasted into this tab changes only the fragment: start again with it
  window.addEventListener("hashchange", () => location.reload());
  document.addEventListener("DOMContentLoaded", start);
})();
