// Pull and Build pages: the form is sent as JSON; the job it makes is followed from job events (and a
// poll of /jobs/state/ while the socket is away): the bar shows the job's progress (for a pull: the bytes of
// all layers), the build log gets each message line, and the final log comes from the job's result.
import { clearErrors, send, showErrors } from "./forms.js";

document.querySelectorAll("form[data-follow]").forEach((form) => {
  const kind = form.getAttribute("data-follow");
  const log = document.querySelector('[data-role="log"]');
  let waiting = null;
  let lastMessage = "";
  let timer = null;

  function phase(text, percent, bad) {
    form.querySelector('[data-role="progress"]').hidden = false;
    const p = Math.max(0, Math.min(100, Math.round(percent)));
    const bar = form.querySelector('[data-role="bar"]');
    bar.value = p;
    bar.textContent = `${p}%`;
    form.querySelector('[data-role="percent"]').textContent = `${p} %`;
    const label = form.querySelector('[data-role="phase"]');
    label.textContent = text;
    label.classList.toggle("error-text", !!bad);
  }

  function addLine(text) {
    if (!log || !text || text === lastMessage) return;
    lastMessage = text;
    log.textContent += `${text}\n`;
    log.scrollTop = log.scrollHeight;
  }

  function done() {
    waiting = null;
    if (timer) clearInterval(timer);
    timer = null;
    form.querySelector('[data-role="submit"]').disabled = false;
  }

  function follow(job) {
    if (!waiting || job.id !== waiting) return;
    if (kind === "build") addLine(job.message);
    if (job.state === "succeeded") {
      const r = job.result || {};
      if (log && r.log) log.textContent = `${r.log.join("\n")}\n`;
      phase(kind === "pull" ? `Pulled as ${r.ref} (${r.layers_fetched} layer(s) downloaded, ${r.layers_reused} already here).`
        : `Built ${r.ref}: ${r.new_layers} new layer(s), ${r.cached} step(s) from the cache.`, 100);
      const label = form.querySelector('[data-role="phase"]');
      if (r.image_id) {
        const a = document.createElement("a");
        a.href = `/images/${r.image_id}/`;
        a.textContent = " Open the image.";
        label.appendChild(a);
      }
      done();
    } else if (job.state === "failed" || job.state === "cancelled") {
      phase(`${kind === "pull" ? "Pull" : "Build"} failed: ${job.error || job.state}`, job.progress || 0, true);
      if (log && job.error) addLine(job.error);
      done();
    } else {
      phase(job.message || "Waiting for the host…", job.progress || 0);
    }
  }

  function poll() {
    if (!waiting) return;
    fetch(`/jobs/state/?ids=${waiting}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : { jobs: [] }))
      .then((d) => d.jobs.forEach(follow))
      .catch(() => {});
  }

  document.addEventListener("berth:job", (e) => follow(e.detail));
  document.addEventListener("berth:open", poll);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const submit = form.querySelector('[data-role="submit"]');
    submit.disabled = true;
    if (log) { log.textContent = ""; lastMessage = ""; }
    phase("Sending…", 0);
    const { ok, body } = await send(form, e.submitter);
    if (!ok || !body.job) {
      submit.disabled = false;
      phase(body.message || "Refused.", 0, true);
      showErrors(form, body.errors, body.message);
      return;
    }
    waiting = body.job.id;
    phase("Queued on the host…", 0);
    follow(body.job);
    timer = setInterval(poll, 1000);
  });
});
