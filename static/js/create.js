// Create form: offers only the images of the chosen host; sends the form without leaving the page,
// shows refusals next to their field, then follows the create job: on success it opens the new
// container, on a host error it shows why next to the field and keeps everything typed.
import { clearErrors, send, showErrors } from "./forms.js";

const form = document.getElementById("create-form");
const host = form && form.querySelector("select[name=host]");
const image = form && form.querySelector("select[name=image]");
const seen = {}; // job id -> latest job event (a fast job may finish before our POST returns)
let waiting = null; // {job id, url}

function filterImages() {
  if (!host || !image) return;
  let firstVisible = null;
  [...image.options].forEach((o) => {
    const match = !o.dataset.host || o.dataset.host === host.value;
    o.hidden = !match;
    o.disabled = !match;
    if (match && !firstVisible) firstVisible = o;
  });
  const current = image.selectedOptions[0];
  if (!current || current.disabled) {
    if (firstVisible) firstVisible.selected = true;
    else image.selectedIndex = -1; // never show another host's image as the choice
  }
  const hint = form.querySelector('[data-error-for="image"]');
  if (!hint) return;
  const field = hint.closest(".field");
  if (!firstVisible) {
    const where = host.selectedOptions[0] ? host.selectedOptions[0].textContent : "this host";
    hint.textContent = `No image you may run is on ${where}: pick another host, or import one on the Images page.`;
    hint.hidden = false;
    hint.setAttribute("data-host-hint", "1");
    field.classList.add("has-error");
  } else if (hint.hasAttribute("data-host-hint")) {
    hint.textContent = "";
    hint.hidden = true;
    hint.removeAttribute("data-host-hint");
    field.classList.remove("has-error");
  }
}

// A failed job names the container spec field it is about (error_field); the form's input for it is the
// same name except where the server's FIELD_OF says otherwise (mounts -> volumes).
const FIELD_OF = JSON.parse((form && form.dataset.fieldOf) || "{}");
function inputFor(field) {
  const name = FIELD_OF[field] || field;
  return name && form.elements[name] ? name : "__all__";
}

const statusEl = form && form.querySelector('[data-role="status"]');
const bar = form && form.querySelector('[data-role="progress"]');
const submit = form && form.querySelector('[data-role="submit"]');

function setStatus(text, bad) {
  statusEl.textContent = text;
  statusEl.classList.toggle("error-text", !!bad);
}

function follow(job) {
  if (!waiting || job.id !== waiting.id) return;
  bar.hidden = false;
  bar.value = job.progress || 0;
  if (job.state === "succeeded") {
    setStatus("Created. Opening it…");
    window.location.assign(waiting.url);
  } else if (job.state === "failed" || job.state === "cancelled") {
    const made = waiting;
    waiting = null;
    bar.hidden = true;
    submit.disabled = false;
    const why = job.error || `the create job ${job.state}`;
    // The host may have made the container and failed to start it (a command that does not exist):
    // then it exists, with its error, and the form says so instead of "nothing was created".
    stillThere(made.container).then((there) => {
      if (!there) {
        setStatus("The host refused it; nothing was created.", true);
        showErrors(form, { [inputFor(job.error_field)]: [why] });
        return;
      }
      setStatus("", false);
      showErrors(form, { [inputFor(job.error_field || "command")]: [why] });
      const slot = form.querySelector(`[data-error-for="${inputFor(job.error_field || "command")}"]`)
        || form.querySelector('[data-role="form-errors"]');
      const open = document.createElement("a");
      open.href = made.url;
      open.setAttribute("data-role", "open-created");
      open.textContent = `Open ${made.name}`;
      slot.append(` ${made.name} exists (stopped, with this error): `, open,
        ". Change the input and create again under another name, or remove it.");
      const name = form.elements.name;
      if (name && name.value === made.name) name.value = "";
    });
  } else {
    setStatus(`Creating on the host: ${job.state}${job.message ? ` — ${job.message}` : ""}`);
  }
}

function stillThere(id) {
  return fetch(`/containers/state/?ids=${id}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { containers: [] }))
    .then((d) => d.containers.some((c) => c.state && c.state !== "removed"))
    .catch(() => false);
}

document.addEventListener("berth:job", (e) => {
  seen[e.detail.id] = e.detail;
  follow(e.detail);
});
// The socket does not replay what it missed (a reconnect, or a busy channel layer that dropped the event):
// resync on open, and ask every few seconds while a create job is followed.
function resync() {
  if (!waiting) return;
  fetch(`/jobs/state/?ids=${waiting.id}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { jobs: [] }))
    .then((d) => d.jobs.forEach(follow))
    .catch(() => {});
}
document.addEventListener("berth:open", resync);
window.setInterval(resync, 3000);

if (form) {
  host.addEventListener("change", filterImages);
  filterImages();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    setStatus("Checking…");
    const { ok, body } = await send(form, e.submitter);
    if (!ok) {
      submit.disabled = false;
      setStatus("Nothing was created: see the message above.", true);
      showErrors(form, body.errors, body.message);
      return;
    }
    waiting = { id: body.job.id, url: body.container.url, container: body.container.id, name: body.container.name };
    if (window.Berth && window.Berth.following) window.Berth.following.add(body.job.id);
    setStatus(`Creating ${body.container.name}…`);
    follow(seen[body.job.id] || body.job);
  });
}
