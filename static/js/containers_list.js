// Containers list tools: search (name, image, host, label=value), a state filter, sortable columns, a live
// state summary and per-row quick actions. Filtering and sorting are the browser's (the page holds the
// user's list); the query is kept in the address (?q=&state=) so a filtered view can be bookmarked.
import { csrf } from "./forms.js";

const table = document.getElementById("containers-table");
const tbody = document.getElementById("containers");
const search = document.querySelector('[data-role="list-search"]');
const stateSel = document.querySelector('[data-role="list-state"]');
const count = document.querySelector('[data-role="list-count"]');
const summary = document.querySelector('[data-role="state-summary"]');
const bulk = document.getElementById("bulk-form");
let sortKey = "created";
let sortDir = -1;

function stateOf(tr) {
  const badge = tr.querySelector('[data-field="state"]');
  return badge ? badge.textContent.trim() : "";
}

function matches(tr, words, state) {
  if (state && stateOf(tr) !== state) return false;
  const hay = [tr.dataset.name, tr.dataset.image, tr.dataset.host, tr.dataset.labels].join(" ").toLowerCase();
  return words.every((w) => hay.includes(w));
}

function value(tr, key) {
  if (key === "state") return stateOf(tr);
  return (tr.dataset[key] || "").toLowerCase();
}

let busy = false;
let observer = null;
function apply() {
  if (!tbody || busy) return;
  busy = true;
  const words = (search.value || "").toLowerCase().split(/\s+/).filter(Boolean);
  const state = stateSel.value;
  const rows = [...tbody.querySelectorAll("tr[data-container-id]")];
  rows.sort((a, b) => sortDir * value(a, sortKey).localeCompare(value(b, sortKey)));
  rows.forEach((tr) => tbody.appendChild(tr));
  let shown = 0;
  const states = {};
  rows.forEach((tr) => {
    const ok = matches(tr, words, state);
    tr.hidden = !ok;
    if (!ok) { const box = tr.querySelector("input[name=ids]"); if (box) box.checked = false; }
    shown += ok ? 1 : 0;
    const s = stateOf(tr);
    states[s] = (states[s] || 0) + 1;
    quickButtons(tr);
  });
  count.textContent = rows.length && shown !== rows.length ? `${shown} of ${rows.length} shown` : "";
  summary.textContent = Object.keys(states).sort().map((s) => `${states[s]} ${s}`).join(" · ");
  const params = new URLSearchParams(window.location.search);
  ["q", "state"].forEach((k) => params.delete(k));
  if (search.value) params.set("q", search.value);
  if (state) params.set("state", state);
  const query = params.toString();
  window.history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
  if (observer) observer.takeRecords(); // our own reordering is not a change to react to
  busy = false;
}

// Only the quick actions that make sense in the row's state are offered.
const WHEN = { start: ["created", "exited", "dead"], stop: ["running", "paused"], restart: ["running", "exited", "created"] };
function quickButtons(tr) {
  const state = stateOf(tr);
  tr.querySelectorAll("button[data-quick]").forEach((b) => {
    if (b.dataset.sending) return;
    b.disabled = !(WHEN[b.dataset.quick] || []).includes(state);
  });
}

async function quick(button) {
  const form = bulk;
  const out = document.querySelector('[data-role="bulk-status"]');
  const name = button.closest("tr").dataset.name;
  button.dataset.sending = "1";
  button.disabled = true;
  let body = {};
  try {
    const response = await fetch(button.dataset.url, {
      method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf(form) },
    });
    body = await response.json();
  } catch (e) {
    body = { ok: false, message: "The server could not be reached; try again." };
  }
  delete button.dataset.sending;
  quickButtons(button.closest("tr"));
  const refused = body.ok === false || !body.job;
  out.textContent = refused ? `${name}: ${body.message || "refused"}` : body.message;
  out.classList.toggle("error-text", refused);
  if (body.job) document.dispatchEvent(new CustomEvent("berth:job", { detail: body.job }));
}

if (table && tbody) {
  const params = new URLSearchParams(window.location.search);
  search.value = params.get("q") || "";
  stateSel.value = params.get("state") || "";
  search.addEventListener("input", apply);
  stateSel.addEventListener("change", apply);
  table.querySelectorAll("button.sort").forEach((b) => b.addEventListener("click", () => {
    const key = b.dataset.sort;
    sortDir = key === sortKey ? -sortDir : (key === "created" ? -1 : 1);
    sortKey = key;
    table.querySelectorAll("th[aria-sort]").forEach((th) => th.setAttribute("aria-sort", "none"));
    b.closest("th").setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    apply();
  }));
  tbody.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-quick]");
    if (b) quick(b);
  });
  // Rows change live (a refresh replaces them; state events change badges): keep filter, order and summary true.
  observer = new MutationObserver(() => window.requestAnimationFrame(apply));
  observer.observe(tbody, { childList: true });
  document.addEventListener("berth:container", () => window.setTimeout(apply, 0));
  document.addEventListener("berth:resynced", () => window.setTimeout(apply, 0));
  apply();
}
