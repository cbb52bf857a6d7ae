// Helpers shared by the page modules: send a form as the browser would (same fields, CSRF token
// included) but ask for JSON, put refusals next to the field they are about, and list a file job.

/** POST `form` (plus the clicked button's name/value) asking for JSON; resolves to {ok, status, body}. */
export async function send(form, submitter, extra) {
  const data = new FormData(form);
  if (submitter && submitter.name) data.append(submitter.name, submitter.value);
  if (extra) Object.entries(extra).forEach(([k, v]) => data.append(k, v));
  let response;
  try {
    // getAttribute: a control named "action" (the bulk buttons) shadows the form.action property.
    response = await fetch(form.getAttribute("action") || window.location.pathname, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf(form) },
    });
  } catch (e) {
    return { ok: false, status: 0, body: { message: "The server could not be reached; try again." } };
  }
  let body = {};
  try { body = await response.json(); } catch (e) { body = { message: `The server answered ${response.status}.` }; }
  // Refusals come in-band: {"ok": false, "status": 4xx, "message", "errors"} with HTTP 200.
  const refused = !response.ok || body.ok === false;
  return { ok: !refused, status: body.status || response.status, body };
}

export function csrf(form) {
  const input = form.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** Hide every field error and the form-level error box. */
export function clearErrors(form) {
  form.querySelectorAll("[data-error-for]").forEach((p) => { p.hidden = true; p.textContent = ""; });
  form.querySelectorAll(".field.has-error").forEach((f) => f.classList.remove("has-error"));
  const top = form.querySelector('[data-role="form-errors"]');
  if (top) { top.hidden = true; top.textContent = ""; }
}

/** errors = {field: [messages]}; "__all__" or unknown fields go to the form's top box. Returns the first field shown. */
export function showErrors(form, errors, fallback) {
  let first = null;
  const general = [];
  Object.entries(errors || {}).forEach(([field, list]) => {
    const text = (Array.isArray(list) ? list : [list]).join(" ");
    const slot = form.querySelector(`[data-error-for="${field}"]`);
    if (!slot) { general.push(text); return; }
    slot.textContent = text;
    slot.hidden = false;
    slot.closest(".field").classList.add("has-error");
    const details = slot.closest("details");
    if (details) details.open = true;
    if (!first) first = slot.closest(".field");
  });
  if (!first && !general.length && fallback) general.push(fallback);
  const top = form.querySelector('[data-role="form-errors"]');
  if (top && general.length) {
    top.textContent = general.join(" ");
    top.hidden = false;
  }
  const focus = first && first.querySelector("input, select, textarea");
  if (focus) focus.focus();
  return first;
}

/** Ask before destructive actions (forms with data-confirm). */
export function confirmed(form) {
  const question = form.getAttribute("data-confirm");
  return !question || window.confirm(question);
}

/** Add a file-producing job (kinds = {job kind: label}) to the page's files list once, newest first. */
export function addFile(job, kinds, format) {
  const list = document.querySelector('[data-role="files"]');
  if (!list || !kinds[job.kind] || list.querySelector(`[data-job-id="${job.id}"]`)) return;
  const li = document.createElement("li");
  li.setAttribute("data-job-id", job.id);
  li.innerHTML = '<span class="file-kind"></span> <span class="file-format"></span> <time data-local></time> '
    + '<span class="badge" data-field="state"></span> '
    + '<a data-role="download" download hidden>Download</a> '
    + '<progress max="100" value="0" data-field="progress" aria-label="Progress"></progress> '
    + '<span class="detail" data-field="detail"></span>';
  li.querySelector(".file-kind").textContent = kinds[job.kind];
  li.querySelector(".file-format").textContent = format ? `(${format})` : "";
  const when = li.querySelector("time");
  when.setAttribute("datetime", job.created || new Date().toISOString());
  when.textContent = window.Berth.formatDate(when.getAttribute("datetime"));
  li.querySelector("a").href = `/jobs/${job.id}/download/`;
  list.insertBefore(li, list.firstChild);
  const empty = document.querySelector('[data-role="files-empty"]');
  if (empty) empty.hidden = true;
}
