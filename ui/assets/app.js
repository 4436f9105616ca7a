// Berth's status page. Everything comes from the admin listener this page
// is served by: /ui/api/status (counters, fills, upstreams, audit), /config,
// /cluster/members and the admin API (POST /admin/v1/<verb>), which is also
// how every action is taken, so the admin guard and the audit log see it.
"use strict";

const POLL_MS = 2000;        // status, fills, upstreams, audit
const SLOW_MS = 10000;       // config and cluster members (with auth on, every request checks a password)
const IMAGES_MS = 30000;     // repositories and images (and after every action)
const PAGE_SIZE = 25;
const REPO_PAGE = 50;        // repositories whose images one refresh reads (a page of describe-repositories)
const SOURCES = ["store", "upstream", "peer", "stale", "local"];
const COLORS = { store: "#1a7f37", upstream: "#0969da", peer: "#8250df", stale: "#9a6700", local: "#57606a" };

const $ = (sel) => document.querySelector(sel);
// repoPage is the page of repositories the operator asked for, repoShown
// the one the table shows (they differ while the next is read); every
// refresh of the images has a number, imagesSeq, so one overtaken by a
// newer refresh shows nothing.
const state = { images: [], page: 0, repoTokens: [""], repoPage: 0, repoShown: 0, repoNext: "", repoCount: 0, imagesSeq: 0,
  fillsSeen: new Map(), confirm: null, preview: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}

function bytes(n) {
  if (n === undefined || n === null || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function when(t) {
  if (!t) return "–";
  const d = new Date(t);
  return isNaN(d) || d.getUTCFullYear() < 2 ? "–" : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function setValue(id, value, text) {
  const e = document.getElementById(id);
  e.dataset.value = String(value);
  e.textContent = text;
}

function showError(msg) {
  const e = $("#error");
  e.hidden = !msg;
  e.textContent = msg || "";
}

async function get(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) throw await failure(r, path);
  return r.json();
}

// api calls an admin API verb; errors carry the API's message.
async function api(verb, body) {
  const r = await fetch("/admin/v1/" + verb, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  if (!r.ok) throw await failure(r, verb);
  return r.json();
}

async function failure(r, what) {
  let msg = r.status + " " + r.statusText;
  try {
    const b = await r.json();
    if (b.errors && b.errors.length) msg = b.errors.map((e) => e.code + ": " + e.message).join("; ");
  } catch (_) { /* not JSON */ }
  const err = new Error(what + ": " + msg);
  err.status = r.status;
  return err;
}

// ---- summary and charts ----

function renderSummary(s) {
  const lookups = s.hits + s.misses + s.revalidated + s.stale;
  setValue("hit-ratio", s.hitRatio, lookups ? (100 * s.hitRatio).toFixed(1) + " %" : "–");
  $("#lookups").textContent = `${s.hits} hits, ${s.revalidated} revalidated, ${s.stale} stale, ${s.misses} misses`;
  for (const src of ["store", "upstream", "peer"]) {
    const v = s.bytesServed[src] || 0;
    setValue("bytes-" + src, v, bytes(v));
  }
  setValue("store-bytes", s.storeBytes, bytes(s.storeBytes));
  $("#store-blobs").textContent = `${s.storeBlobs} blobs`;
  setValue("fills-count", s.fillsInFlight, String(s.fillsInFlight));
  $("#evicted").textContent = `${s.evictedBlobs} blobs evicted since start`;
  renderVulns(s.vulnerabilities || {}, s.scanQueue || 0);
}

// renderVulns shows the findings of the stored images' latest scans:
// critical and high as the number, every severity below it.
function renderVulns(v, queue) {
  const severe = (v.CRITICAL || 0) + (v.HIGH || 0);
  setValue("vulns", severe, String(severe));
  const parts = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]
    .filter((k) => v[k]).map((k) => `${v[k]} ${k.toLowerCase()}`);
  $("#vulns-by-severity").textContent = (parts.length ? parts.join(", ") : "no findings") +
    (queue ? `; ${queue} scans queued` : "") + " (describe-image-scan-findings for an image's)";
}

// deltas turns cumulative samples into per-interval values.
function deltas(hist, f) {
  const out = [];
  for (let i = 1; i < hist.length; i++) out.push(Math.max(0, f(hist[i]) - f(hist[i - 1])));
  return out;
}

function line(svg, values, max, color) {
  if (values.length === 0) return;
  const w = 600, h = 150, pad = 4;
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - pad - (max ? v / max : 0) * (h - 2 * pad)).toFixed(1)}`);
  const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  p.setAttribute("points", values.length === 1 ? `0,${pts[0].split(",")[1]} ${w},${pts[0].split(",")[1]}` : pts.join(" "));
  p.setAttribute("fill", "none");
  p.setAttribute("stroke", color);
  p.setAttribute("stroke-width", "2");
  p.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(p);
}

function renderCharts(hist) {
  const ratio = $("#chart-ratio"), bytesSvg = $("#chart-bytes");
  ratio.replaceChildren();
  bytesSvg.replaceChildren();
  const served = (h) => h.hits + h.revalidated + h.stale;
  const total = (h) => served(h) + h.misses;
  const dServed = deltas(hist, served), dTotal = deltas(hist, total);
  line(ratio, dTotal.map((t, i) => (t ? dServed[i] / t : 0)), 1, COLORS.store);
  const series = SOURCES.map((src) => [src, deltas(hist, (h) => h.bytesServed[src] || 0)]);
  const max = Math.max(1, ...series.flatMap(([, v]) => v));
  const legend = $("#chart-legend");
  legend.replaceChildren();
  for (const [src, v] of series) {
    if (!v.some((x) => x > 0)) continue;
    line(bytesSvg, v, max, COLORS[src]);
    const sw = el("span", { class: "legend" });
    sw.style.background = COLORS[src];
    legend.append(sw, src);
  }
}

// ---- fills ----

function renderFills(fills) {
  const body = $("#fills tbody");
  body.replaceChildren();
  for (const f of fills) {
    const running = !f.doneAt;
    const st = running ? "running" : f.error ? "failed" : "done";
    const prog = el("progress", { max: String(Math.max(f.size, 1)) });
    if (f.size >= 0) prog.value = running ? f.written : f.size;
    const of = f.size >= 0 ? `${bytes(f.written)} of ${bytes(f.size)}` : `${bytes(f.written)} of ?`;
    body.append(el("tr", { "data-digest": f.digest, "data-state": st, "data-written": String(f.written), "data-size": String(f.size) },
      el("td", {}, el("code", {}, f.digest.slice(0, 19) + "…")),
      el("td", {}, `${f.upstream} / ${f.repository}`),
      el("td", {}, f.source || "–"),
      el("td", {}, prog, " ", el("span", { class: "progress-text" }, of)),
      el("td", { class: "state-" + st, title: f.error || "" }, st + (f.error ? ": " + f.error : ""))));
  }
  $("#fills-empty").hidden = fills.length > 0;
}

// ---- upstreams ----

function renderUpstreams(ups) {
  const body = $("#upstreams tbody");
  body.replaceChildren();
  for (const u of ups) {
    const req = Object.values(u.requests || {}).reduce((a, b) => a + b, 0);
    const fail = u.errors + (u.requests["429"] || 0) + (u.requests["5xx"] || 0);
    body.append(el("tr", { "data-upstream": u.name },
      el("td", {}, u.name, u.prefix ? el("div", { class: "muted" }, "prefix " + u.prefix) : null),
      el("td", {}, u.registry || "–", el("div", { class: "muted" }, u.url || "")),
      el("td", { class: "health state-" + u.health.replace(" ", "-"), title: u.reason || "" }, u.health, u.reason ? el("div", { class: "muted" }, u.reason) : null),
      el("td", { class: "num" }, String(req)),
      el("td", { class: "num" }, String(fail)),
      el("td", { class: "num" }, String(u.throttled)),
      el("td", { class: "num ratelimit" }, u.rateLimitRemaining === undefined ? "–" : String(u.rateLimitRemaining)),
      el("td", { class: "num" }, `${u.fillsOk} / ${u.fillsFailed}`)));
  }
}

// ---- audit ----

// isPageRead is an admin API read, such as the ones this page makes to
// refresh itself; the audit table leaves them out unless asked.
const isPageRead = (e) => /^(Describe|Get|List)/.test(e.action) && e.result === "success" &&
  !["GetDownloadUrlForLayer", "GetAuthorizationToken"].includes(e.action);

function renderAudit(st) {
  const body = $("#audit tbody");
  body.replaceChildren();
  const all = $("#audit-reads").checked;
  const shown = st.audit.filter((e) => all || !isPageRead(e));
  for (const e of shown.reverse()) {
    const target = [...new Set([e.repository || e.target, e.reference, e.digest].filter(Boolean))].join(" ");
    body.append(el("tr", { "data-action": e.action },
      el("td", {}, when(e.time)), el("td", {}, e.principal + (e.attemptedUser ? ` (tried ${e.attemptedUser})` : "")),
      el("td", {}, e.sourceIP), el("td", {}, e.action), el("td", {}, target), el("td", {}, e.result), el("td", { class: "num" }, String(e.status))));
  }
  $("#audit-note").textContent = st.auditError ? st.auditError : st.audit.length ?
    `the last ${st.audit.length} events, newest first` + (all ? "" : `; ${st.audit.length - shown.length} admin API reads left out`) :
    "no event yet (or the audit log is off)";
}

// ---- config and cluster ----

async function refreshConfig() {
  const c = await get("/config");
  const r = c.lastReload;
  const reload = r ? (r.successful ? `loaded ${when(r.at)}` : `last reload REFUSED ${when(r.at)}: ${r.error}`) : "";
  const e = $("#config");
  e.textContent = `config ${c.path || "(built-in defaults)"} sha256 ${c.hash.slice(0, 12)} · ${reload}`;
  e.className = r && !r.successful ? "state-failed" : "muted";
  e.dataset.hash = c.hash;
}

async function refreshMembers() {
  let m;
  try {
    m = await get("/cluster/members");
  } catch (err) {
    if (err.status === 404) { $("#cluster").hidden = true; return; }
    throw err;
  }
  $("#cluster").hidden = false;
  const body = $("#members tbody");
  body.replaceChildren();
  for (const x of m.members) {
    body.append(el("tr", { "data-member": x.name, "data-state": x.state, "data-stored": String(x.storedBytes), "data-owned": String(x.ownedBytes) },
      el("td", {}, x.name + (x.name === m.self ? " (this node)" : "")), el("td", {}, x.state),
      el("td", {}, x.peerAddr || x.gossipAddr), el("td", { class: "num" }, bytes(x.storedBytes)),
      el("td", { class: "num" }, bytes(x.ownedBytes)), el("td", {}, x.version)));
  }
  // Owned bytes are computed in the background, not per request: say when.
  const asOf = $("#owned-asof");
  asOf.dataset.asof = m.ownedBytesAsOf || "";
  asOf.textContent = m.ownedBytesAsOf
    ? `Owned: the bytes of this node's blobs each member owns, computed ${when(m.ownedBytesAsOf)} (${age(m.ownedBytesAsOf)} ago).`
    : "Owned: not computed yet (the node computes it in the background shortly after it starts).";
}

// age is how long ago t was, roughly: "42 s", "3 min", "2 h".
function age(t) {
  const s = Math.max(0, Math.round((Date.now() - new Date(t)) / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

// ---- repositories and images ----

// refreshImages reads one page of repositories (REPO_PAGE, the page the
// operator moved to) and their images: never every repository of the
// store, however many it holds. Only the latest refresh shows what it
// read; when a move to another page fails, the page shown stays.
async function refreshImages() {
  const seq = ++state.imagesSeq, to = state.repoPage;
  let page, all;
  try {
    const req = { includeCached: true, maxResults: REPO_PAGE };
    if (state.repoTokens[to]) req.nextToken = state.repoTokens[to];
    page = await api("describe-repositories", req);
    all = await repositoryImages(page.repositories);
  } catch (err) {
    if (seq === state.imagesSeq && to !== state.repoShown) {
      state.repoPage = state.repoShown; // the move failed: stay on the page shown
      renderImages();
    }
    throw err;
  }
  if (seq !== state.imagesSeq) return; // a newer refresh overtook this one
  if (to !== state.repoShown) state.page = 0;
  state.repoShown = to;
  state.repoNext = page.nextToken || "";
  state.repoCount = page.repositories.length;
  state.images = all;
  renderImages();
}

// repositoryImages reads the images of repos, sorted by repository, then
// newest first.
async function repositoryImages(repos) {
  const all = [];
  for (const r of repos) {
    if (!r.imageCount) continue;
    try {
      const d = await api("describe-images", { repositoryName: r.repositoryName });
      all.push(...d.imageDetails);
    } catch (err) {
      if (err.status !== 404) throw err; // emptied meanwhile
    }
  }
  all.sort((a, b) => a.repositoryName.localeCompare(b.repositoryName) || (b.imagePushedAt || "").localeCompare(a.imagePushedAt || ""));
  return all;
}

// moveRepoPage moves to the previous (-1) or next (1) page of
// repositories; the buttons stay disabled until it is read, so a double
// click moves one page.
function moveRepoPage(delta) {
  const to = state.repoShown + delta;
  if (state.repoPage !== state.repoShown || to < 0 || (delta > 0 && !state.repoNext)) return;
  if (delta > 0) state.repoTokens[to] = state.repoNext;
  state.repoPage = to;
  renderImages();
  refreshImages().catch((err) => showError(err.message));
}

function renderImages() {
  const q = $("#search").value.trim().toLowerCase();
  const rows = state.images.filter((im) => !q || im.repositoryName.toLowerCase().includes(q) || im.imageDigest.includes(q) ||
    (im.imageTags || []).some((t) => t.toLowerCase().includes(q)));
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const body = $("#images tbody");
  body.replaceChildren();
  for (const im of rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)) body.append(imageRow(im));
  $("#page-info").textContent = `${rows.length} images · page ${state.page + 1} of ${pages}`;
  $("#prev").disabled = state.page === 0;
  $("#next").disabled = state.page >= pages - 1;
  const first = state.repoShown * REPO_PAGE, moving = state.repoPage !== state.repoShown;
  $("#repo-info").textContent = state.repoCount ? `repositories ${first + 1}–${first + state.repoCount}${state.repoNext ? " of more" : ""}` : "";
  $("#repo-prev").disabled = moving || state.repoShown === 0;
  $("#repo-next").disabled = moving || !state.repoNext;
  $("#images-empty").hidden = rows.length > 0;
}

function imageRow(im) {
  const id = { imageDigest: im.imageDigest };
  const key = im.repositoryName + "@" + im.imageDigest;
  const actions = el("td", { class: "actions" });
  if (im.sourceUpstream) {
    actions.append(el("button", { type: "button", class: "pin", onclick: () => act(im.pinned ? "unpin-image" : "pin-image",
      { repositoryName: im.repositoryName, imageId: id }) }, im.pinned ? "Unpin" : "Pin"), " ");
  }
  const confirming = state.confirm === key;
  actions.append(el("button", { type: "button", class: confirming ? "delete confirm" : "delete danger", onclick: () => {
    if (!confirming) { state.confirm = key; renderImages(); return; }
    state.confirm = null;
    act("batch-delete-image", { repositoryName: im.repositoryName, imageIds: [id] });
  } }, confirming ? "Confirm delete" : "Delete"));
  return el("tr", { "data-repository": im.repositoryName, "data-digest": im.imageDigest, "data-size": String(im.imageSizeInBytes) },
    el("td", {}, im.repositoryName, im.pinned ? el("span", { class: "pinned", title: "never evicted" }, " 📌 pinned") : null),
    el("td", {}, ...(im.imageTags || []).map((t) => el("span", { class: "tag" }, t))),
    el("td", {}, el("code", { title: im.imageDigest }, im.imageDigest.slice(0, 19) + "…")),
    el("td", { class: "num" }, bytes(im.imageSizeInBytes)),
    el("td", {}, when(im.imagePushedAt)), el("td", {}, when(im.lastRecordedPullTime)),
    el("td", {}, im.sourceUpstream ? "cached from " + im.sourceUpstream : "local"), actions);
}

// act runs an admin API verb from a button, then refreshes what it changed.
async function act(verb, body) {
  const out = $("#action-result");
  out.textContent = verb + " …";
  try {
    const r = await api(verb, body);
    out.textContent = verb + ": " + summarize(verb, r);
    out.dataset.verb = verb;
    showError("");
  } catch (err) {
    out.textContent = "";
    showError(err.message);
  }
  await Promise.allSettled([refreshImages(), refreshPolicies(), refreshStatus()]);
}

function summarize(verb, r) {
  switch (verb) {
    case "run-lifecycle": return `${r.imagesEvaluated} images evaluated, ${(r.expiredImages || []).length} expired`;
    case "start-gc": return `done in ${r.durationSeconds.toFixed(2)} s`;
    case "batch-delete-image": return `${r.imageIds.length} deleted, ${r.failures.length} failed` +
      (r.failures.length ? ": " + r.failures.map((f) => f.failureReason).join("; ") : "");
    case "pin-image": return `pinned ${r.repositoryName}@${r.imageDigest.slice(0, 19)}…`;
    case "unpin-image": return `unpinned ${r.repositoryName}@${r.imageDigest.slice(0, 19)}…`;
  }
  return "done";
}

// ---- lifecycle ----

async function refreshPolicies() {
  const ps = (await api("describe-lifecycle-policies", {})).lifecyclePolicies;
  const body = $("#policies tbody");
  body.replaceChildren();
  for (const p of ps) {
    let rules = "";
    try { rules = JSON.parse(p.lifecyclePolicyText).rules.map((r) => `#${r.rulePriority} ${r.description || r.selection.countType}`).join(", "); } catch (_) { rules = "?"; }
    body.append(el("tr", { "data-scope": p.policyScope }, el("td", {}, p.policyScope), el("td", {}, rules), el("td", {}, when(p.lastEvaluatedAt)),
      el("td", {}, el("button", { type: "button", class: "preview", onclick: () => preview(p.policyScope) }, "Preview"))));
  }
  $("#policies-empty").hidden = ps.length > 0;
}

async function preview(scope) {
  try {
    await api("start-lifecycle-policy-preview", { repositoryName: scope });
    state.preview = scope;
    await pollPreview();
  } catch (err) { showError(err.message); }
}

async function pollPreview() {
  if (!state.preview) return;
  const p = await api("get-lifecycle-policy-preview", { repositoryName: state.preview });
  $("#preview").hidden = false;
  const n = p.summary ? p.summary.expiringImageTotalCount : 0;
  $("#preview-title").textContent = `Preview of ${p.repositoryName}: ${p.status}` +
    (p.status === "COMPLETE" ? ` — ${n} images would expire (${bytes(p.summary.expiringImageTotalBytes)} at most)` : "") +
    (p.failureReason ? ": " + p.failureReason : "");
  const rows = $("#preview-rows");
  rows.replaceChildren();
  for (const r of p.previewResults || []) {
    rows.append(el("tr", {}, el("td", {}, r.repositoryName), el("td", {}, el("code", {}, r.imageDigest.slice(0, 19) + "…")),
      el("td", {}, (r.imageTags || []).join(", ")), el("td", { class: "num" }, bytes(r.imageSizeInBytes)), el("td", {}, "#" + r.appliedRulePriority)));
  }
  if (p.status !== "IN_PROGRESS") state.preview = null;
}

// ---- polling ----

async function refreshStatus() {
  const st = await get("/ui/api/status");
  renderSummary(st);
  renderCharts(st.history);
  renderFills(st.fills);
  renderUpstreams(st.upstreams);
  renderAudit(st);
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  $("#updated").dataset.at = st.time;
}

// refresh runs the refreshes and shows their first error, or clears it.
async function refresh(...fs) {
  try {
    await Promise.all(fs.map((f) => f()));
    showError("");
  } catch (err) {
    showError(err.status === 401 || err.status === 403 ? "Access refused: " + err.message + " — log in as a member of the admin group." : err.message);
  }
}

const tick = () => refresh(refreshStatus, pollPreview);
const tickSlow = () => refresh(refreshConfig, refreshMembers);

async function tickImages() {
  try { await Promise.all([refreshImages(), refreshPolicies()]); } catch (err) { showError(err.message); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#search").addEventListener("input", () => { state.page = 0; renderImages(); });
  $("#prev").addEventListener("click", () => { state.page--; renderImages(); });
  $("#next").addEventListener("click", () => { state.page++; renderImages(); });
  $("#repo-prev").addEventListener("click", () => moveRepoPage(-1));
  $("#repo-next").addEventListener("click", () => moveRepoPage(1));
  $("#run-lifecycle").addEventListener("click", () => act("run-lifecycle", {}));
  $("#start-gc").addEventListener("click", () => act("start-gc", {}));
  $("#audit-reads").addEventListener("change", () => refreshStatus().catch((err) => showError(err.message)));
  tick();
  tickSlow();
  tickImages();
  setInterval(tick, POLL_MS);
  setInterval(tickSlow, SLOW_MS);
  setInterval(tickImages, IMAGES_MS);
});
