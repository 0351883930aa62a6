// dragoman's admin UI: a page that talks to the gateway's own management API. No framework,
// no build step; every value from the server is put in the page as text, never as markup.

const state = { session: null, csrf: null, tail: null };

// ---------------------------------------------------------------------------------------------
// DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(msg) {
  const t = h("div", {}, msg);
  document.getElementById("toast").append(t);
  setTimeout(() => t.remove(), 4000);
}

const usd = (v) => (v === null || v === undefined ? "—" : "$" + Number(v).toFixed(v > 0 && v < 1 ? 6 : 2));
const num = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"));
const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "—");

// ---------------------------------------------------------------------------------------------
// The API: the session cookie rides along; the CSRF header proves the page sent it.

async function api(path, opts = {}) {
  const headers = { "x-dragoman-csrf": state.csrf || "" };
  let body;
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  const r = await fetch(path, { method: opts.method || "GET", headers, body, credentials: "same-origin" });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401 && path !== "/ui/api/login") {
    state.session = null;
    render();
    throw new Error("signed out");
  }
  if (!r.ok) {
    const msg = (data && data.error && data.error.message) || r.statusText;
    throw new Error(msg);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Routing

const ADMIN_VIEWS = [
  ["overview", "Overview"], ["logs", "Requests"], ["keys", "Keys"], ["teams", "Teams"],
  ["users", "Users"], ["models", "Models"], ["config", "Config"],
];
const KEY_VIEWS = [["overview", "My key"], ["logs", "My requests"]];

function route() {
  const [view, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  return { view, arg: rest.map(decodeURIComponent).join("/") };
}

function nav() {
  const el = document.getElementById("nav");
  el.replaceChildren();
  if (!state.session) { el.hidden = true; return; }
  el.hidden = false;
  const { view } = route();
  for (const [id, label] of state.session.role === "admin" ? ADMIN_VIEWS : KEY_VIEWS) {
    el.append(h("a", { href: "#/" + id, "aria-current": id === view ? "page" : null }, label));
  }
  const who = document.getElementById("who");
  who.replaceChildren(
    h("span", {}, state.session.role === "admin" ? "admin" : "key: " + state.session.label),
    h("button", { class: "ghost", type: "button", onclick: logout }, "Log out"),
  );
}

async function render() {
  stopTail();
  nav();
  const main = document.getElementById("main");
  if (!state.session) {
    document.getElementById("who").replaceChildren();
    main.replaceChildren(loginView());
    main.querySelector("input")?.focus();
    return;
  }
  const { view, arg } = route();
  const views = state.session.role === "admin"
    ? { overview, logs, keys, teams, users, models, config }
    : { overview: keyOverview, logs };
  const fn = views[view] || views.overview;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await fn(arg);
    main.replaceChildren(content);
  } catch (e) {
    if (e.message !== "signed out") main.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", render);

// The skip link moves focus, not the route (a `#main` hash would re-render the page).
document.querySelector(".skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});

// ---------------------------------------------------------------------------------------------
// Login

function loginView() {
  const err = h("p", { class: "error", role: "alert" });
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true, placeholder: "sk-…" });
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      try {
        const s = await api("/ui/api/login", { method: "POST", body: { key: input.value } });
        input.value = "";
        state.session = s;
        state.csrf = s.csrf;
        render();
      } catch (e) {
        err.textContent = e.message;
      }
    },
  },
    h("h1", {}, "Sign in to dragoman"),
    h("label", { for: "key" }, "Master key or virtual key", input),
    h("button", { type: "submit" }, "Sign in"),
    err,
    h("p", { class: "muted" }, "The key is sent once; the browser keeps only a signed session cookie it cannot read."),
  );
  return h("section", { class: "login card" }, form);
}

async function logout() {
  try { await api("/ui/api/logout", { method: "POST", body: {} }); } catch { /* signed out anyway */ }
  state.session = null;
  state.csrf = null;
  location.hash = "";
  render();
}

// ---------------------------------------------------------------------------------------------
// Charts: plain SVG bars, each with its value as a tooltip, and the numbers in a table too.

const OK_ERR = ["#1f4e79", "#b42318"];

function barChart(title, points, opts = {}) {
  const W = 600, H = 180, pad = 24;
  const max = Math.max(1e-12, ...points.map((p) => p.stack ? p.stack.reduce((a, b) => a + b, 0) : p.value));
  const bw = points.length ? (W - pad) / points.length : 0;
  // Attribute colours, not CSS variables: SVG presentation attributes do not read them, and
  // the page's CSP forbids inline styles.
  const colors = opts.colors || ["#1f4e79", "#2e86de", "#f2b134", "#6c5ce7", "#16a085"];
  const bars = points.map((p, i) => {
    const parts = p.stack || [p.value];
    let y = H - pad;
    return parts.map((v, j) => {
      const hgt = (v / max) * (H - 2 * pad);
      y -= hgt;
      return svg("rect", { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: Math.max(0, hgt), fill: opts.color || colors[j % colors.length] },
        svg("title", {}, `${p.label}: ${opts.fmt ? opts.fmt(v) : num(v)}${opts.names ? " " + opts.names[j] : ""}`));
    });
  });
  const labels = points.length ? [points[0], points[points.length - 1]] : [];
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, preserveAspectRatio: "none" },
    svg("line", { x1: pad, y1: H - pad, x2: W, y2: H - pad, stroke: "#d9dee3" }),
    svg("text", { x: 2, y: 12 }, opts.fmt ? opts.fmt(max) : num(max)),
    bars,
    labels.map((p, i) => svg("text", { x: i ? W - 4 : pad, y: H - 8, "text-anchor": i ? "end" : "start" }, p.label)),
  );
  const legend = opts.names ? h("div", { class: "legend" }, opts.names.map((n, j) => h("span", {}, h("i", { class: "c" + (opts.colors ? "e" : "") + j }), n))) : null;
  return h("figure", { class: "card chartcard" }, h("figcaption", {}, h("strong", {}, title)), chart, legend);
}

function statCard(k, v) {
  return h("div", { class: "card stat" }, h("div", { class: "v" }, v), h("div", { class: "k" }, k));
}

const cellClass = (c) => [c.n ? "n" : "", c.cls || ""].join(" ").trim() || null;

function table(cols, rows, opts = {}) {
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: cellClass(c) }, c.label)))),
    h("tbody", {}, rows.length ? rows.map((r) => {
      const tr = h("tr", opts.onrow ? { class: "click", tabindex: 0, onclick: () => opts.onrow(r), onkeydown: (e) => { if (e.key === "Enter") opts.onrow(r); } } : {},
        cols.map((c) => h("td", { class: cellClass(c) }, c.get(r))));
      return tr;
    }) : h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, opts.empty || "Nothing yet.")))));
}

// Minutes (or hours) of recent records as chart points.
function bucketed(records, field) {
  const now = Date.now();
  const span = 60 * 60 * 1000, step = 60 * 1000;
  const buckets = new Map();
  for (let t = now - span; t <= now; t += step) buckets.set(Math.floor(t / step), { n: 0, err: 0, inp: 0, read: 0, write: 0, out: 0, cost: 0 });
  for (const r of records) {
    const b = buckets.get(Math.floor(r.started_at_ms / step));
    if (!b) continue;
    b.n += 1;
    if (r.outcome !== "ok") b.err += 1;
    b.inp += r.usage.input_uncached || 0;
    b.read += r.usage.cache_read || 0;
    b.write += r.usage.cache_write || 0;
    b.out += r.usage.output || 0;
    b.cost += r.cost_usd || 0;
  }
  return [...buckets.entries()].map(([k, b]) => ({ label: new Date(k * step).toISOString().slice(11, 16), ...b }));
}

// ---------------------------------------------------------------------------------------------
// Overview

async function overview() {
  const since = Math.floor(Date.now() / 1000) - 30 * 86400;
  const [days, byModel, byKey, byTeam, recent, keyList, teamList] = await Promise.all([
    api(`/spend/summary?group_by=day&since=${since}`),
    api(`/spend/summary?group_by=model&since=${since}`),
    api(`/spend/summary?group_by=key&since=${since}`),
    api(`/spend/summary?group_by=team&since=${since}`),
    api(`/spend/logs?limit=1000&since=${Date.now() - 3600 * 1000}`),
    api("/key/list?return_full_object=true&size=1000"),
    api("/team/list"),
  ]);
  // Spend is grouped by lasting ids; people know keys and teams by their names.
  const keyName = new Map(keyList.keys.map((k) => [k.key_id, k.key_alias || k.key_name]));
  const teamName = new Map(teamList.map((t) => [t.team_id, t.team_alias || t.team_id]));
  const sum = (rows, f) => rows.reduce((a, r) => a + (f(r) || 0), 0);
  const minutes = bucketed(recent);
  const errors = sum(recent, (r) => (r.outcome !== "ok" ? 1 : 0));
  const groupTable = (rows, what, names) => table([
    { label: what, get: (r) => (names && names.get(r.group)) || r.group || "—" },
    { label: "Requests", n: true, get: (r) => num(r.requests) },
    { label: "Input", n: true, get: (r) => num(r.usage.input_uncached) },
    { label: "Cache read", n: true, get: (r) => num(r.usage.cache_read) },
    { label: "Cache write", n: true, get: (r) => num(r.usage.cache_write) },
    { label: "Output", n: true, get: (r) => num(r.usage.output) },
    // Requests of a model with no known price have no cost; they are counted, never summed
    // as zero.
    { label: "Spend", n: true, get: (r) => usd(r.cost_usd) + (r.unknown_cost_requests ? ` + ${r.unknown_cost_requests} unpriced` : "") },
  ], rows);
  return h("section", {},
    h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      statCard("Requests, 30 days", num(sum(days, (r) => r.requests))),
      statCard("Spend, 30 days", usd(sum(days, (r) => r.cost_usd))),
      statCard("Tokens, 30 days", num(sum(days, (r) => r.usage.input_uncached + r.usage.cache_read + r.usage.cache_write + r.usage.output))),
      statCard("Requests, last hour", num(recent.length)),
      statCard("Errors, last hour", num(errors)),
    ),
    h("h2", {}, "Last hour, per minute"),
    h("div", { class: "cards2" },
      barChart("Requests and errors", minutes.map((m) => ({ label: m.label, stack: [m.n - m.err, m.err] })), { names: ["ok", "errors"], colors: OK_ERR }),
      barChart("Tokens by bucket", minutes.map((m) => ({ label: m.label, stack: [m.inp, m.read, m.write, m.out] })), { names: ["input", "cache read", "cache write", "output"] }),
      barChart("Spend", minutes.map((m) => ({ label: m.label, value: m.cost })), { fmt: usd }),
    ),
    h("h2", {}, "Last 30 days, per day"),
    h("div", { class: "cards2" },
      barChart("Spend per day", days.map((d) => ({ label: d.group, value: d.cost_usd || 0 })), { fmt: usd }),
      barChart("Requests per day", days.map((d) => ({ label: d.group, value: d.requests }))),
    ),
    h("h2", {}, "By model group"), groupTable(byModel, "Model group"),
    h("h2", {}, "By key"), groupTable(byKey, "Key", keyName),
    h("h2", {}, "By team"), groupTable(byTeam, "Team", teamName),
  );
}

async function keyOverview() {
  const info = await api("/key/info");
  const i = info.info;
  const recent = await api(`/spend/logs?limit=1000&since=${Date.now() - 3600 * 1000}`);
  const minutes = bucketed(recent);
  return h("section", {},
    h("h1", {}, "Key " + (i.key_alias || i.key_name)),
    h("div", { class: "grid" },
      statCard("Spend this period", usd(i.spend)),
      statCard("Budget", i.max_budget === null ? "none" : usd(i.max_budget)),
      statCard("Requests per minute", i.rpm_limit === null ? "no limit" : num(i.rpm_limit)),
      statCard("Tokens per minute", i.tpm_limit === null ? "no limit" : num(i.tpm_limit)),
      statCard("Requests, last hour", num(recent.length)),
    ),
    h("div", { class: "cards2" },
      barChart("Requests and errors, last hour", minutes.map((m) => ({ label: m.label, stack: [m.n - m.err, m.err] })), { names: ["ok", "errors"], colors: OK_ERR }),
      barChart("Spend, last hour", minutes.map((m) => ({ label: m.label, value: m.cost })), { fmt: usd }),
    ),
    h("h2", {}, "Details"),
    h("div", { class: "card" }, h("dl", { class: "kv" },
      ["key_name", "models", "team_id", "user_id", "budget_duration", "budget_reset_at", "expires", "blocked"].map((k) =>
        [h("dt", {}, k), h("dd", {}, Array.isArray(i[k]) ? (i[k].join(", ") || "all") : String(i[k] ?? "—"))]))),
  );
}

// ---------------------------------------------------------------------------------------------
// Requests: the log, a live tail, one request's detail

const outcomePill = (o) => h("span", { class: "pill " + (o === "ok" ? "ok" : o.includes("client") ? "warn" : "bad") }, o);

function stopTail() {
  if (state.tail) { clearInterval(state.tail); state.tail = null; }
}

async function logs(arg) {
  if (arg) return logDetail(arg);
  const filters = { model: "", key: "", team_id: "", outcome: "" };
  let rows = await api("/spend/logs?limit=200");
  const body = h("div");
  const draw = () => {
    const shown = rows.filter((r) =>
      (!filters.model || r.model === filters.model) &&
      (!filters.key || (r.key_alias || r.principal || "").includes(filters.key)) &&
      (!filters.team_id || r.team_id === filters.team_id) &&
      (!filters.outcome || (filters.outcome === "ok" ? r.outcome === "ok" : r.outcome !== "ok")));
    body.replaceChildren(table([
      { label: "Time", get: (r) => when(r.started_at_ms) },
      { label: "Model", get: (r) => r.model },
      { label: "Key", get: (r) => r.key_alias || r.principal },
      { label: "Team", cls: "hide-sm", get: (r) => r.team_id || "—" },
      { label: "Dialects", cls: "hide-sm", get: (r) => `${r.client_dialect} → ${r.upstream_dialect || "—"}` },
      { label: "Outcome", get: (r) => outcomePill(r.outcome) },
      { label: "Status", n: true, cls: "hide-sm", get: (r) => r.status },
      { label: "Latency ms", n: true, get: (r) => num(r.latency_ms) },
      { label: "Tokens in/out", n: true, cls: "hide-sm", get: (r) => `${num((r.usage.input_uncached || 0) + (r.usage.cache_read || 0) + (r.usage.cache_write || 0))} / ${num(r.usage.output)}` },
      { label: "Cost", n: true, get: (r) => usd(r.cost_usd) },
    ], shown, { onrow: (r) => { location.hash = "#/logs/" + encodeURIComponent(r.request_id); }, empty: "No requests match." }));
  };
  const input = (name, label) => h("label", {}, label, h("input", { name, oninput: (e) => { filters[name] = e.target.value.trim(); draw(); } }));
  const live = h("input", { type: "checkbox", id: "live", checked: true });
  const status = h("span", { class: "muted", "aria-live": "polite" });
  const poll = async () => {
    if (!live.checked) return;
    const since = rows.length ? rows[0].started_at_ms + 1 : Date.now() - 3600 * 1000;
    try {
      const fresh = await api(`/spend/logs?limit=200&since=${since}`);
      const seen = new Set(rows.map((r) => r.request_id));
      const add = fresh.filter((r) => !seen.has(r.request_id));
      if (add.length) { rows = add.concat(rows).slice(0, 1000); draw(); }
      status.textContent = `live · ${rows.length} shown · ${new Date().toISOString().slice(11, 19)}`;
    } catch (e) { status.textContent = e.message; }
  };
  state.tail = setInterval(poll, 2000);
  draw();
  return h("section", {},
    h("h1", {}, "Requests"),
    h("div", { class: "toolbar" },
      input("model", "Model group"), input("key", "Key"), input("team_id", "Team"),
      h("label", {}, "Outcome", h("select", { name: "outcome", onchange: (e) => { filters.outcome = e.target.value; draw(); } },
        h("option", { value: "" }, "any"), h("option", { value: "ok" }, "ok"), h("option", { value: "failed" }, "failed"))),
      h("label", { for: "live", class: "check" }, live, "Live tail"),
      status,
    ),
    body,
  );
}

async function logDetail(id) {
  const rows = await api("/spend/logs?limit=1000");
  const r = rows.find((x) => x.request_id === id);
  if (!r) return h("p", {}, "That request is not among the latest 1000. ", h("a", { href: "#/logs" }, "Back to requests"));
  const u = r.usage;
  return h("section", {},
    h("p", {}, h("a", { href: "#/logs" }, "← Requests")),
    h("h1", {}, "Request " + r.request_id),
    h("div", { class: "grid" },
      statCard("Outcome", outcomePill(r.outcome)), statCard("Status", r.status),
      statCard("Latency", num(r.latency_ms) + " ms"), statCard("First token", r.ttft_ms === null ? "—" : num(r.ttft_ms) + " ms"),
      statCard("Cost", usd(r.cost_usd)),
    ),
    h("h2", {}, "Attempts"),
    // `attempted` lists every attempt as `deployment:outcome`, the last one included.
    table([{ label: "#", n: true, get: (a) => a.i }, { label: "Deployment", get: (a) => a.dep }, { label: "Outcome", get: (a) => outcomePill(a.outcome) }],
      (r.attempted.length ? r.attempted : [`${r.deployment || "—"}:${r.outcome}`]).map((v, i) => {
        const at = v.lastIndexOf(":");
        return { i: i + 1, dep: at < 0 ? v : v.slice(0, at), outcome: at < 0 ? r.outcome : v.slice(at + 1) };
      })),
    h("h2", {}, "Usage"),
    table([{ label: "Bucket", get: (x) => x[0] }, { label: "Tokens", n: true, get: (x) => num(x[1]) }],
      [["input (uncached)", u.input_uncached], ["cache read", u.cache_read], ["cache write", u.cache_write], ["output", u.output], ["reasoning (of output)", u.reasoning]]),
    h("h2", {}, "Dropped or approximated in translation"),
    r.dropped_fields && r.dropped_fields.length
      ? h("ul", { class: "card dropped" }, r.dropped_fields.map((d) => h("li", {}, d)))
      : h("p", { class: "muted" }, "Nothing: the request and its answer crossed whole."),
    h("h2", {}, "Record"),
    h("div", { class: "card" }, h("dl", { class: "kv" },
      ["started_at_ms", "model", "deployment", "provider_model", "client_dialect", "upstream_dialect", "stream", "principal", "key_alias", "team_id", "user_id", "end_user", "usage_estimated", "cache_hit", "cost_nanos"].map((k) =>
        [h("dt", {}, k), h("dd", {}, k === "started_at_ms" ? when(r[k]) : String(r[k] ?? "—"))]))),
  );
}

// ---------------------------------------------------------------------------------------------
// Keys, teams, users

function field(name, label, attrs = {}) {
  return h("label", {}, label, h("input", { name, ...attrs }));
}

function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.value === "") continue;
    if (el.dataset.kind === "number") out[el.name] = Number(el.value);
    else if (el.dataset.kind === "list") out[el.name] = el.value.split(",").map((s) => s.trim()).filter(Boolean);
    else out[el.name] = el.value;
  }
  return out;
}

const limitFields = () => [
  field("max_budget", "Budget (USD)", { inputmode: "decimal", "data-kind": "number", size: 8 }),
  field("budget_duration", "Per (30d, 1mo…)", { size: 8 }),
  field("rpm_limit", "Requests/min", { inputmode: "numeric", "data-kind": "number", size: 8 }),
  field("tpm_limit", "Tokens/min", { inputmode: "numeric", "data-kind": "number", size: 9 }),
];

// Budget, period and rate limits of a key, team or user, asked one by one; `null` when the
// operator cancels. An empty answer removes the limit.
function askLimits(name, cur) {
  const out = {};
  for (const [f, q, kind] of [
    ["max_budget", `Budget in USD for ${name}`, "number"],
    ["budget_duration", "Budget period (30d, 1mo…)", "text"],
    ["rpm_limit", "Requests per minute", "number"],
    ["tpm_limit", "Tokens per minute", "number"],
  ]) {
    const a = prompt(`${q} (empty: none)`, cur[f] ?? "");
    if (a === null) return null;
    out[f] = a.trim() === "" ? null : kind === "number" ? Number(a) : a.trim();
  }
  return out;
}

async function keys() {
  const teamsList = await api("/team/list");
  const teamName = new Map(teamsList.map((t) => [t.team_id, t.team_alias || t.team_id]));
  const shown = h("div", { "aria-live": "polite" });
  const listBox = h("div");
  const form = h("form", {
    class: "inline card",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const k = await api("/key/generate", { method: "POST", body: formValues(form) });
        shown.replaceChildren(h("div", { class: "card" },
          h("h2", {}, "New key: copy it now, it is shown only this once"),
          h("p", { class: "secret", id: "new-key" }, k.key),
          h("button", { type: "button", onclick: () => navigator.clipboard?.writeText(k.key).then(() => toast("Copied")) }, "Copy"),
          " ", h("button", { type: "button", class: "ghost", onclick: () => shown.replaceChildren() }, "Done")));
        form.reset();
        await refresh();
      } catch (e) { toast(e.message); }
    },
  },
    field("key_alias", "Alias", { required: true, size: 14 }),
    field("models", "Models (comma-separated)", { "data-kind": "list", size: 18 }),
    h("label", {}, "Team", h("select", { name: "team_id" }, h("option", { value: "" }, "none"),
      teamsList.map((t) => h("option", { value: t.team_id }, t.team_alias || t.team_id)))),
    limitFields(),
    field("duration", "Expires after", { size: 6, placeholder: "90d" }),
    h("button", { type: "submit" }, "Create key"));
  const act = (label, fn, cls) => h("button", { type: "button", class: cls || "ghost", onclick: async () => {
    try { await fn(); toast(label + ": done"); await refresh(); } catch (e) { toast(e.message); }
  } }, label);
  const refresh = async () => {
    const rows = (await api("/key/list?return_full_object=true&size=1000")).keys;
    listBox.replaceChildren(h("h2", {}, `${rows.length} key${rows.length === 1 ? "" : "s"}`), keyTable(rows));
  };
  const keyTable = (rows) => table([
      { label: "Alias", get: (k) => k.key_alias || "—" },
      { label: "Key", cls: "hide-sm", get: (k) => k.key_name },
      { label: "Team", cls: "hide-sm", get: (k) => (k.team_id && teamName.get(k.team_id)) || k.team_id || "—" },
      { label: "Models", cls: "hide-sm", get: (k) => k.models.join(", ") || "all" },
      { label: "Spend", n: true, get: (k) => usd(k.spend) },
      { label: "Budget", n: true, get: (k) => (k.max_budget === null ? "—" : usd(k.max_budget)) },
      { label: "RPM", n: true, cls: "hide-sm", get: (k) => k.rpm_limit ?? "—" },
      { label: "State", get: (k) => h("span", { class: "pill " + (k.blocked ? "bad" : "ok") }, k.blocked ? "blocked" : "active") },
      { label: "Actions", get: (k) => h("div", { class: "actions" },
        k.blocked ? act("Unblock", () => api("/key/unblock", { method: "POST", body: { key: k.token } }))
                  : act("Block", () => api("/key/block", { method: "POST", body: { key: k.token } })),
        act("Edit limits", async () => {
          const limits = askLimits(k.key_alias || k.key_name, k);
          if (!limits) throw new Error("cancelled");
          await api("/key/update", { method: "POST", body: { key: k.token, ...limits } });
        }),
        act("Delete", async () => {
          if (!confirm(`Delete key ${k.key_alias || k.key_name}? Clients using it are refused at once.`)) throw new Error("cancelled");
          await api("/key/delete", { method: "POST", body: { keys: [k.token] } });
        }, "danger"),
      ) },
    ], rows, { empty: "No keys yet: create one above." });
  await refresh();
  return h("section", {}, h("h1", {}, "Keys"), form, shown, listBox);
}

async function teams() {
  const list = await api("/team/list");
  const form = h("form", {
    class: "inline card",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try { await api("/team/new", { method: "POST", body: formValues(form) }); toast("Team created"); render(); } catch (e) { toast(e.message); }
    },
  }, field("team_alias", "Name", { required: true, size: 14 }), field("models", "Models (comma-separated)", { "data-kind": "list", size: 18 }), limitFields(),
  h("button", { type: "submit" }, "Create team"));
  return h("section", {},
    h("h1", {}, "Teams"), form,
    h("h2", {}, `${list.length} team${list.length === 1 ? "" : "s"}`),
    table([
      { label: "Name", get: (t) => t.team_alias || t.team_id },
      { label: "Id", cls: "hide-sm", get: (t) => t.team_id },
      { label: "Members", n: true, get: (t) => t.members_with_roles.length },
      { label: "Spend", n: true, get: (t) => usd(t.spend) },
      { label: "Budget", n: true, get: (t) => (t.max_budget === null ? "—" : usd(t.max_budget)) },
      { label: "State", get: (t) => h("span", { class: "pill " + (t.blocked ? "bad" : "ok") }, t.blocked ? "blocked" : "active") },
      { label: "Actions", get: (t) => h("div", { class: "actions" },
        h("button", { type: "button", class: "ghost", onclick: async () => {
          try { await api("/team/update", { method: "POST", body: { team_id: t.team_id, blocked: !t.blocked } }); render(); } catch (e) { toast(e.message); }
        } }, t.blocked ? "Unblock" : "Block"),
        h("button", { type: "button", class: "ghost", onclick: async () => {
          const limits = askLimits(t.team_alias || t.team_id, t);
          if (!limits) return;
          try { await api("/team/update", { method: "POST", body: { team_id: t.team_id, ...limits } }); render(); } catch (e) { toast(e.message); }
        } }, "Edit limits"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Delete team ${t.team_alias || t.team_id} and its keys?`)) return;
          try { await api("/team/delete", { method: "POST", body: { team_ids: [t.team_id] } }); render(); } catch (e) { toast(e.message); }
        } }, "Delete")) },
    ], list, { empty: "No teams yet." }),
  );
}

async function users() {
  const list = await api("/user/list?page_size=1000");
  const form = h("form", {
    class: "inline card",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try { await api("/user/new", { method: "POST", body: { ...formValues(form), auto_create_key: false } }); toast("User created"); render(); } catch (e) { toast(e.message); }
    },
  }, field("user_id", "User id", { required: true, size: 14 }), field("user_email", "Email", { type: "email", size: 18 }), limitFields(),
  h("button", { type: "submit" }, "Create user"));
  return h("section", {},
    h("h1", {}, "Users"), form,
    h("h2", {}, `${list.total} user${list.total === 1 ? "" : "s"}`),
    table([
      { label: "User", get: (u) => u.user_id },
      { label: "Email", cls: "hide-sm", get: (u) => u.user_email || "—" },
      { label: "Teams", cls: "hide-sm", get: (u) => u.teams.join(", ") || "—" },
      { label: "Spend", n: true, get: (u) => usd(u.spend) },
      { label: "Budget", n: true, get: (u) => (u.max_budget === null ? "—" : usd(u.max_budget)) },
      { label: "Actions", get: (u) => h("div", { class: "actions" },
        h("button", { type: "button", class: "ghost", onclick: async () => {
          const limits = askLimits(u.user_id, u);
          if (!limits) return;
          try { await api("/user/update", { method: "POST", body: { user_id: u.user_id, ...limits } }); render(); } catch (e) { toast(e.message); }
        } }, "Edit limits"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Delete user ${u.user_id} and their keys?`)) return;
          try { await api("/user/delete", { method: "POST", body: { user_ids: [u.user_id] } }); render(); } catch (e) { toast(e.message); }
        } }, "Delete")) },
    ], list.users, { empty: "No users yet." }),
  );
}

// ---------------------------------------------------------------------------------------------
// Models and config

async function models() {
  const { deployments } = await api("/ui/api/deployments");
  const price = (p) => (p ? `${p.input ?? "?"} / ${p.output ?? "?"}` : "unknown");
  return h("section", {},
    h("h1", {}, "Models and deployments"),
    h("p", { class: "muted" }, "State as this instance's router sees it; prices in USD per million tokens (input / output)."),
    table([
      { label: "Model group", get: (d) => d.model_name },
      { label: "Deployment", cls: "hide-sm", get: (d) => d.id },
      { label: "Provider", get: (d) => `${d.provider}/${d.model}` },
      { label: "State", get: (d) => {
        const probe = d.last_probe;
        if (d.cooling_down) return h("span", { class: "pill bad" }, "cooling down");
        if (probe && probe.healthy === false) return h("span", { class: "pill bad", title: probe.error || "" }, "unhealthy");
        return h("span", { class: "pill ok" }, "healthy");
      } },
      { label: "Latency est. ms", n: true, get: (d) => num(d.latency_estimate_ms) },
      { label: "In flight", n: true, cls: "hide-sm", get: (d) => d.in_flight },
      { label: "Limits", cls: "hide-sm", get: (d) => [d.rpm && `${d.rpm} rpm`, d.tpm && `${d.tpm} tpm`, d.max_parallel_requests && `${d.max_parallel_requests} parallel`].filter(Boolean).join(", ") || "—" },
      { label: "Price /M", n: true, get: (d) => price(d.price_per_million) },
    ], deployments),
  );
}

async function config() {
  const c = await api("/ui/api/config");
  return h("section", {},
    h("h1", {}, "Running config"),
    h("p", { class: "muted" }, "As parsed; every credential shows only whether it is set."),
    h("pre", { id: "config" }, JSON.stringify(c, null, 2)),
  );
}

// ---------------------------------------------------------------------------------------------
// Start: resume a session if the cookie holds one.

(async () => {
  try {
    const r = await fetch("/ui/api/session", { credentials: "same-origin" });
    if (r.ok) {
      state.session = await r.json();
      state.csrf = state.session.csrf;
    }
  } catch { /* not signed in */ }
  render();
})();
