// Containers list and detail: state, exit code and uptime follow container events live; actions
// and bulk actions are sent without leaving the page; a container removed elsewhere disappears.
import { addFile, clearErrors, confirmed, send, showErrors } from "./forms.js";

const FILE_KINDS = { "container.export": "Filesystem export", "container.logs": "Full log" };
const page = document.querySelector(".container-page");
const tbody = document.getElementById("containers");

function uptime(iso) {
  if (!iso) return "—";
  let s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function tick() {
  document.querySelectorAll("[data-container-id]").forEach((el) => {
    const cell = el.querySelector('[data-field="uptime"]');
    if (!cell) return;
    const badge = el.querySelector('[data-field="state"]');
    const running = badge && badge.textContent.trim() === "running";
    cell.textContent = running ? uptime(el.getAttribute("data-started")) : "—";
  });
}

// Buttons only for what makes sense in the current state (the server refuses the rest anyway).
function enableActions(state) {
  if (!page) return;
  let table = {};
  try { table = JSON.parse(page.getAttribute("data-action-states") || "{}"); } catch (e) { table = {}; }
  page.querySelectorAll("form[data-action]").forEach((form) => {
    const allowed = table[form.getAttribute("data-action")];
    const ok = state !== "removed" && (!allowed || allowed.includes(state));
    form.querySelectorAll("button").forEach((b) => { b.disabled = !ok; });
  });
}

function gone(el) {
  if (el.tagName === "TR") {
    el.remove();
    if (tbody && !tbody.querySelector("tr")) {
      const empty = document.getElementById("containers-empty");
      if (empty) empty.hidden = false;
    }
    return;
  }
  if (el === page) {
    const note = page.querySelector('[data-role="gone"]');
    if (note) note.hidden = false;
    const badge = page.querySelector('[data-field="state"]');
    if (badge) { badge.textContent = "removed"; badge.className = "badge removed"; }
    enableActions("removed");
    return;
  }
  if (el.tagName === "LI") el.remove();
}

// The newest event of each container, numbered as it came. A fetch that began before an event was read from the
// database before the change the event reports: its answer must not undo the event (a container that exited
// while the page resynced stayed "running").
let clock = 0;
const latest = new Map();
function noted(c) { latest.set(String(c.id), [++clock, c]); }
function newerThan(start, id) { const l = latest.get(String(id)); return !!l && l[0] > start; }

// A container this page has not rendered: take the server's rendering of the list.
let refreshing = null;
function refreshList() {
  if (!tbody || refreshing) return;
  const start = clock;
  refreshing = fetch(window.location.pathname, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : null))
    .then((html) => {
      if (!html) return;
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("containers");
      if (!fresh) return;
      const checked = new Set([...tbody.querySelectorAll("input[name=ids]:checked")].map((i) => i.value));
      tbody.innerHTML = fresh.innerHTML;
      tbody.querySelectorAll("input[name=ids]").forEach((i) => { i.checked = checked.has(i.value); });
      document.getElementById("containers-empty").hidden = !!tbody.querySelector("tr");
      latest.forEach(([n, c]) => { if (n > start) apply(c); });
      tick();
    })
    .catch(() => {})
    .finally(() => { refreshing = null; });
}

// Fill only this container's own fields: not the job rows, files or logs nested in its page.
function fillOwn(el, values) {
  const own = [...el.querySelectorAll("[data-field]")].filter((n) => n.closest("[data-container-id]") === el
    && !n.closest("[data-job-id]") && !n.closest("[data-logs]"));
  window.Berth.fill({ querySelectorAll: () => own }, values);
}

function apply(c) {
  const nodes = document.querySelectorAll(`[data-container-id="${c.id}"]`);
  if (!nodes.length) {
    if (c.state !== "removed") refreshList();
    return;
  }
  nodes.forEach((el) => {
    if (c.state === "removed") { gone(el); return; }
    if ("started" in c) el.setAttribute("data-started", c.started || "");
    const values = { state: c.state };
    ["exit_code", "status_message", "restart_count", "started", "finished"].forEach((k) => {
      if (k in c) values[k] = c[k];
    });
    fillOwn(el, values);
    // No message is no message (fill shows "—" for empty values).
    el.querySelectorAll('[data-field="status_message"]').forEach((m) => { if (!c.status_message) m.textContent = ""; });
    el.querySelectorAll(".exit").forEach((x) => { x.hidden = c.state !== "exited"; });
    const exit = el.querySelector('[data-role="exit"]');
    if (exit) exit.hidden = c.exit_code === null || c.exit_code === undefined;
    const oom = el.querySelector('[data-role="oom"]');
    if (oom) oom.hidden = !c.oom_killed;
    if (el.tagName === "TR") el.className = `state-${c.state}`;
    if (el === page) enableActions(c.state);
  });
  tick();
}

document.addEventListener("berth:container", (e) => { noted(e.detail); apply(e.detail); });

function resync() {
  const ids = [...new Set([...document.querySelectorAll("[data-container-id]")].map((el) => el.getAttribute("data-container-id")))];
  if (!ids.length) return;
  const start = clock;
  fetch(`/containers/state/?ids=${ids.join(",")}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { containers: [] }))
    .then((data) => {
      data.containers.forEach((c) => { if (!newerThan(start, c.id)) apply(c); });
      document.dispatchEvent(new CustomEvent("berth:resynced"));  // the list's summary counts the badges again
    })
    .catch(() => {});
}
document.addEventListener("berth:open", resync);

// --- detail page ------------------------------------------------------------------------------------

function status(text, bad) {
  const el = document.querySelector('[data-role="action-status"]');
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("error-text", !!bad);
}

// The banner follows the latest action sent from this page (not the create job it was opened with).
function retarget(job) {
  const banner = document.querySelector('[data-role="job-banner"]');
  if (!banner) return;
  banner.setAttribute("data-job-id", job.id);
  banner.className = "job-banner";
  banner.hidden = false;
  banner.querySelector('[data-role="job-text"]').textContent = `${VERB[job.kind] || job.kind} queued…`;
  const link = banner.querySelector("a[data-role=job-link]");
  if (link) link.href = `/jobs/${job.id}/`;
}

// "Download full log": its entry (state, then the link) appears next to the button that asked for it.
function inlineFile(form, job) {
  let slot = form.parentNode.querySelector('[data-role="log-file"]');
  if (!slot) {
    slot = document.createElement("span");
    slot.className = "log-file";
    slot.setAttribute("data-role", "log-file");
    slot.setAttribute("role", "status");
    form.after(slot);
  }
  slot.setAttribute("data-job-id", job.id);
  slot.innerHTML = 'Full log: <span class="badge" data-field="state"></span> '
    + '<a data-role="download" download hidden>Download</a>';
  slot.querySelector("a").href = `/jobs/${job.id}/download/`;
  window.Berth.fill(slot, { state: job.state });
}

function announce(job, form) {
  addFile(job, FILE_KINDS);
  retarget(job);
  if (form && form.classList.contains("logs-download")) inlineFile(form, job);
  document.dispatchEvent(new CustomEvent("berth:job", { detail: job }));
  // It may have finished before the POST was answered: show that, not "queued".
  if (lastEnded[job.id]) document.dispatchEvent(new CustomEvent("berth:job", { detail: lastEnded[job.id] }));
}

const VERB = { "container.create": "Create", "container.start": "Start", "container.stop": "Stop",
  "container.restart": "Restart", "container.kill": "Kill", "container.pause": "Pause",
  "container.unpause": "Unpause", "container.remove": "Remove", "container.export": "Export",
  "container.logs": "Log download", "container.commit": "Commit" };

document.addEventListener("berth:job", (e) => {
  const job = e.detail;
  if (page && job.target_type === "container" && String(job.target_id) === page.getAttribute("data-container-id")) {
    addFile(job, FILE_KINDS);
  }
  const banner = document.querySelector(`[data-role="job-banner"][data-job-id="${job.id}"]`);
  if (!banner) return;
  const ended = ["succeeded", "failed", "cancelled"];
  if (ended.some((s) => banner.classList.contains(`state-${s}`)) && !ended.includes(job.state)) return;
  const text = banner.querySelector('[data-role="job-text"]');
  banner.querySelector('[data-role="job-progress"]').value = job.progress || 0;
  banner.className = `job-banner state-${job.state}`;
  if (job.state === "failed") {
    text.textContent = `${VERB[job.kind] || job.kind} failed: ${job.error || "no reason given"}`;
    if (job.kind === "container.create") {
      const retry = document.createElement("a");
      retry.href = `/containers/new/?from_job=${job.id}`;
      retry.textContent = " Correct the input and try again";
      text.appendChild(retry);
    }
  } else if (job.state === "succeeded") {
    text.textContent = `${VERB[job.kind] || job.kind} done.`;
    const made = job.result && job.result.image_id;
    if (job.kind === "container.commit" && made) {
      const open = document.createElement("a");
      open.href = `/images/${made}/`;
      open.setAttribute("data-role", "new-image");
      open.textContent = ` Open image ${job.result.ref || ""}`;
      text.appendChild(open);
    }
  } else {
    text.textContent = `${VERB[job.kind] || job.kind}: ${job.state}${job.message ? ` — ${job.message}` : ""}`;
  }
});

// The job the page was opened for: its state now (jobs.js's resync on connect may run before this module).
function bannerResync() {
  const banner = document.querySelector('[data-role="job-banner"]');
  const id = banner && !banner.hidden && banner.getAttribute("data-job-id");
  if (!id) return;
  fetch(`/jobs/state/?ids=${id}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { jobs: [] }))
    .then((d) => d.jobs.forEach((job) => document.dispatchEvent(new CustomEvent("berth:job", { detail: job }))))
    .catch(() => {});
}
document.addEventListener("berth:open", bannerResync);

if (page) {
  bannerResync();
  const badge = page.querySelector('[data-field="state"]');
  enableActions(badge ? badge.textContent.trim() : "");
  const forms = [...page.querySelectorAll("form[data-action]"), ...page.querySelectorAll("form.logs-download")];
  forms.forEach((form) => form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!confirmed(form)) return;
    clearErrors(form);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    status("Sending…");
    const { ok, body } = await send(form, e.submitter);
    buttons.forEach((b) => { b.disabled = false; });
    if (!ok) {
      status(body.message || "Refused.", true);
      showErrors(form, body.errors);
      return;
    }
    status(body.message || "Queued.");
    if (body.job) announce(body.job, form);
    if (form.getAttribute("data-action") === "stop" && body.job) countdown(form, body.job.id);
    const details = form.closest("details.commit");
    if (details && body.job) details.open = false;
  }));
}

// Stop: how long until SIGKILL, counted down until the container has stopped.
let counting = null;
let stopJob = null;
const finishedJobs = {}; // job id -> final state, for jobs that end before their POST is answered
const lastEnded = {}; // job id -> its final event
function stopped() {
  const badge = page.querySelector('.page-head [data-field="state"]');
  const state = badge ? badge.textContent.trim() : "";
  if (["running", "paused"].includes(state) && finishedJobs[stopJob] !== "succeeded") return false;
  window.clearInterval(counting);
  counting = null;
  if (finishedJobs[stopJob] === "failed") status("The stop failed: see the job below.", true);
  else status(`Stopped (${["running", "paused"].includes(state) ? "exited" : state}).`);
  return true;
}
function countdown(form, jobId) {
  const input = form.querySelector("input[name=timeout]");
  let left = Math.max(0, parseInt(input && input.value, 10) || 0);
  window.clearInterval(counting);
  stopJob = jobId;
  const show = () => status(left > 0 ? `Stopping: SIGKILL in ${left} s unless it exits first…` : "Stopping: SIGKILL sent…");
  if (stopped()) return;
  show();
  counting = window.setInterval(() => {
    if (stopped()) return;
    left = Math.max(0, left - 1);
    show();
  }, 1000);
}
document.addEventListener("berth:job", (e) => {
  const job = e.detail;
  if (["succeeded", "failed", "cancelled"].includes(job.state)) {
    finishedJobs[job.id] = job.state;
    lastEnded[job.id] = job;
  }
  if (counting && job.id === stopJob && finishedJobs[job.id]) stopped();
});
document.addEventListener("berth:container", () => { if (counting) window.setTimeout(stopped, 0); });

// A restart is marked in the log view where it happened (not a log line: search and counts skip it).
let restarts = null;
document.addEventListener("berth:container", (e) => {
  const c = e.detail;
  if (!page || String(c.id) !== page.getAttribute("data-container-id") || !("restart_count" in c)) return;
  if (restarts !== null && c.restart_count > restarts) {
    const view = page.querySelector('[data-logs] [data-role="view"]');
    if (view) {
      const mark = document.createElement("div");
      mark.className = "log-marker";
      mark.setAttribute("role", "note");
      mark.textContent = `— restarted (${c.restart_count}) at ${window.Berth.formatDate(new Date().toISOString())} —`;
      view.appendChild(mark);
    }
  }
  restarts = c.restart_count;
});
if (page) {
  const count = page.querySelector('[data-field="restart_count"]');
  restarts = count ? parseInt(count.textContent, 10) || 0 : null;
}

// --- list page: bulk actions -------------------------------------------------------------------------

const bulk = document.getElementById("bulk-form");
if (bulk) {
  const all = bulk.querySelector('[data-role="select-all"]');
  const out = bulk.querySelector('[data-role="bulk-status"]');
  all.addEventListener("change", () => {
    bulk.querySelectorAll("input[name=ids]").forEach((i) => { i.checked = all.checked; });
  });
  bulk.addEventListener("submit", async (e) => {
    e.preventDefault();
    const picked = bulk.querySelectorAll("input[name=ids]:checked").length;
    if (!picked) { out.textContent = "Select at least one container."; out.classList.add("error-text"); return; }
    const action = e.submitter ? e.submitter.value : "";
    if (action === "remove" && !window.confirm(`Remove ${picked} container(s)? Running ones are refused.`)) return;
    out.classList.remove("error-text");
    out.textContent = "Sending…";
    const { ok, body } = await send(bulk, e.submitter);
    if (!ok) { out.textContent = body.message || "Refused."; out.classList.add("error-text"); return; }
    const problems = (body.errors || []).map((x) => `${x.name}: ${x.message}`);
    out.textContent = `${action} queued for ${body.jobs.length} container(s).` + (problems.length ? ` Not done — ${problems.join("; ")}` : "");
    out.classList.toggle("error-text", problems.length > 0);
    body.jobs.forEach((job) => document.dispatchEvent(new CustomEvent("berth:job", { detail: job })));
  });
}

tick();
window.setInterval(tick, 1000);
if (document.querySelector("#live-status.on")) resync();
