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
  if ((!current || current.disabled) && firstVisible) firstVisible.selected = true;
  const hint = form.querySelector('[data-error-for="image"]');
  if (hint && !firstVisible) {
    hint.textContent = "No image you may run is on this host: import one on the Images page.";
    hint.hidden = false;
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
    waiting = null;
    bar.hidden = true;
    submit.disabled = false;
    setStatus("The host refused it; nothing was created.", true);
    showErrors(form, { [inputFor(job.error_field)]: [job.error || `the create job ${job.state}`] });
  } else {
    setStatus(`Creating on the host: ${job.state}${job.message ? ` — ${job.message}` : ""}`);
  }
}

document.addEventListener("berth:job", (e) => {
  seen[e.detail.id] = e.detail;
  follow(e.detail);
});
document.addEventListener("berth:open", () => {
  if (!waiting) return;
  fetch(`/jobs/state/?ids=${waiting.id}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { jobs: [] }))
    .then((d) => d.jobs.forEach(follow))
    .catch(() => {});
});

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
    waiting = { id: body.job.id, url: body.container.url };
    setStatus(`Creating ${body.container.name}…`);
    follow(seen[body.job.id] || body.job);
  });
}
