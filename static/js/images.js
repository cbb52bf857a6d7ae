// Images: the import form uploads by XHR so the bar shows the bytes sent, then the import job's
// progress from job events; when the job succeeds the table is refreshed from the server.
// Image detail: actions are sent without leaving the page; save jobs get a download link when done.
import { addFile, clearErrors, confirmed, send, showErrors } from "./forms.js";

// The import and load forms: each uploads by XHR and follows its own job.
const forms = [...document.querySelectorAll("form[data-upload]")];
const form = forms[0] || null; // the list page has the upload forms (the detail page none)
const seen = {};
const waiting = new Map(); // job id -> its form

function phase(f, text, percent, bad) {
  const box = f.querySelector('[data-role="upload"]');
  const bar = f.querySelector('[data-role="bar"]');
  box.hidden = false;
  const p = Math.max(0, Math.min(100, Math.round(percent)));
  bar.value = p;
  bar.textContent = `${p}%`;
  f.querySelector('[data-role="percent"]').textContent = `${p} %`;
  const label = f.querySelector('[data-role="phase"]');
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

// Upload is the first half of the bar, the host's work the second.
function follow(job) {
  const f = waiting.get(job.id);
  if (!f) return;
  const verb = f.getAttribute("data-verb") || "Import";
  if (job.state === "succeeded") {
    waiting.delete(job.id);
    phase(f, `${verb} done.`, 100);
    f.querySelector('[data-role="submit"]').disabled = false;
    refreshRows().then(() => {
      const ids = job.result && (job.result.image_id ? [job.result.image_id]
        : (job.result.images || []).map((i) => i.image_id));
      (ids || []).forEach((id) => {
        const row = document.getElementById(`image-${id}`);
        if (row) row.classList.add("fresh");
      });
    });
  } else if (job.state === "failed" || job.state === "cancelled") {
    waiting.delete(job.id);
    phase(f, `${verb} failed: ${job.error || job.state}`, 50 + (job.progress || 0) / 2, true);
    showErrors(f, { [job.error_field === "ref" ? "ref" : "file"]: [job.error || `the job ${job.state}`] });
    f.querySelector('[data-role="submit"]').disabled = false;
  } else {
    phase(f, `${verb} on the host (${job.progress || 0} %)…`, 50 + (job.progress || 0) / 2);
  }
}

// Any image job finishing (an import sent without this script, a tag, a removal elsewhere) may change
// the list: take the server's rendering of it again.
const LIST_KINDS = { "image.import": 1, "image.load": 1, "image.tag": 1, "image.remove": 1, "image.seed": 1,
  "container.commit": 1 };
document.addEventListener("berth:job", (e) => {
  seen[e.detail.id] = e.detail;
  const mine = waiting.has(e.detail.id);
  follow(e.detail);
  if (form && !mine && e.detail.state === "succeeded" && LIST_KINDS[e.detail.kind]) refreshRows();
});
document.addEventListener("berth:open", () => {
  if (!waiting.size) return;
  fetch(`/jobs/state/?ids=${[...waiting.keys()].join(",")}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { jobs: [] }))
    .then((d) => d.jobs.forEach(follow))
    .catch(() => {});
});

forms.forEach((f) => {
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(f);
    const submit = f.querySelector('[data-role="submit"]');
    submit.disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", f.getAttribute("action"));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (p) => {
      if (p.lengthComputable) phase(f, `Uploading ${Math.round((100 * p.loaded) / p.total)} %`, (50 * p.loaded) / p.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status >= 400 || body.ok === false || !body.job) {
        submit.disabled = false;
        phase(f, body.message || `Refused (${xhr.status}).`, 0, true);
        showErrors(f, body.errors, body.message);
        return;
      }
      waiting.set(body.job.id, f);
      if (window.Berth && window.Berth.following) window.Berth.following.add(body.job.id);
      phase(f, "Uploaded; waiting for the host…", 50);
      follow(seen[body.job.id] || body.job);
    });
    xhr.addEventListener("error", () => {
      submit.disabled = false;
      phase(f, "The upload failed: the server could not be reached.", 0, true);
    });
    xhr.send(new FormData(f));
  });
});

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
