// Images: the import form uploads by XHR so the bar shows the bytes sent, then the import job's
// progress from job events; when the job succeeds the table is refreshed from the server.
// Image detail: actions are sent without leaving the page; save jobs get a download link when done.
import { addFile, clearErrors, confirmed, send, showErrors } from "./forms.js";

const form = document.getElementById("import-form");
const seen = {};
let waiting = null;

function phase(text, percent, bad) {
  const box = form.querySelector('[data-role="upload"]');
  const bar = form.querySelector('[data-role="bar"]');
  box.hidden = false;
  const p = Math.max(0, Math.min(100, Math.round(percent)));
  bar.value = p;
  bar.textContent = `${p}%`;
  form.querySelector('[data-role="percent"]').textContent = `${p} %`;
  const label = form.querySelector('[data-role="phase"]');
  label.textContent = text;
  label.classList.toggle("error-text", !!bad);
}

function refreshRows() {
  const table = document.getElementById("images-table");
  return fetch(table.getAttribute("data-rows-url"), { credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : null))
    .then((html) => {
      if (html === null) return;
      document.getElementById("images").innerHTML = html;
      document.getElementById("images-empty").hidden = !!document.querySelector("#images tr");
    })
    .catch(() => {});
}

// Upload is the first half of the bar, the host's import the second.
function follow(job) {
  if (!waiting || job.id !== waiting) return;
  if (job.state === "succeeded") {
    waiting = null;
    phase("Imported.", 100);
    form.querySelector('[data-role="submit"]').disabled = false;
    refreshRows().then(() => {
      const id = job.result && job.result.image_id;
      const row = id && document.getElementById(`image-${id}`);
      if (row) row.classList.add("fresh");
    });
  } else if (job.state === "failed" || job.state === "cancelled") {
    waiting = null;
    phase(`Import failed: ${job.error || job.state}`, 50 + (job.progress || 0) / 2, true);
    showErrors(form, { file: [job.error || `the import job ${job.state}`] });
    form.querySelector('[data-role="submit"]').disabled = false;
  } else {
    phase(`Importing on the host (${job.progress || 0} %)…`, 50 + (job.progress || 0) / 2);
  }
}

// Any image job finishing (an import sent without this script, a tag, a removal elsewhere) may change
// the list: take the server's rendering of it again.
const LIST_KINDS = { "image.import": 1, "image.load": 1, "image.tag": 1, "image.remove": 1, "image.seed": 1,
  "container.commit": 1 };
document.addEventListener("berth:job", (e) => {
  seen[e.detail.id] = e.detail;
  const mine = e.detail.id === waiting;
  follow(e.detail);
  if (form && !mine && e.detail.state === "succeeded" && LIST_KINDS[e.detail.kind]) refreshRows();
});
document.addEventListener("berth:open", () => {
  if (!waiting) return;
  fetch(`/jobs/state/?ids=${waiting}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { jobs: [] }))
    .then((d) => d.jobs.forEach(follow))
    .catch(() => {});
});

if (form) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(form);
    const submit = form.querySelector('[data-role="submit"]');
    submit.disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (p) => {
      if (p.lengthComputable) phase(`Uploading ${Math.round((100 * p.loaded) / p.total)} %`, (50 * p.loaded) / p.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status >= 400 || body.ok === false || !body.job) {
        submit.disabled = false;
        phase(body.message || `Refused (${xhr.status}).`, 0, true);
        showErrors(form, body.errors, body.message);
        return;
      }
      waiting = body.job.id;
      phase("Uploaded; waiting for the host…", 50);
      follow(seen[waiting] || body.job);
    });
    xhr.addEventListener("error", () => {
      submit.disabled = false;
      phase("The upload failed: the server could not be reached.", 0, true);
    });
    xhr.send(new FormData(form));
  });
}

// --- image detail ------------------------------------------------------------------------------------

const FILE_KINDS = { "image.save": "Saved image" };

document.querySelectorAll(".actions form[data-action]").forEach((f) => f.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!confirmed(f)) return;
  clearErrors(f);
  const out = document.querySelector('[data-role="action-status"]');
  out.textContent = "Sending…";
  out.classList.remove("error-text");
  const { ok, body } = await send(f, e.submitter);
  out.textContent = body.message || (ok ? "Done." : "Refused.");
  out.classList.toggle("error-text", !ok);
  if (!ok) { showErrors(f, body.errors); return; }
  // Sharing changes the facts shown beside the form.
  if (body.image) window.Berth.fill(document.querySelector(".facts"), body.image);
  if (body.job) {
    const format = f.querySelector("select[name=format]");
    addFile(body.job, FILE_KINDS, format ? format.value : "");
    document.dispatchEvent(new CustomEvent("berth:job", { detail: body.job }));
    if (body.job.kind === "image.remove") {
      document.addEventListener("berth:job", (ev) => {
        if (ev.detail.id === body.job.id && ev.detail.state === "succeeded") window.location.assign("/images/");
      });
    }
  }
}));
