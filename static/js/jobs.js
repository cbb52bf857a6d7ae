// Jobs: every element marked data-job-id (rows of the jobs tables, file lists, job banners) follows
// job events without reloading. A jobs table body with data-target="container:5" only takes in new
// jobs of that target; without it, every new job visible to the user is added at the top.
(function () {
  "use strict";
  var tbody = document.getElementById("jobs");
  var table = document.getElementById("jobs-table");
  var FILE_KINDS = { "container.export": 1, "container.logs": 1, "image.save": 1 };

  function cell(text, field) {
    var td = document.createElement("td");
    if (field) {
      var span = document.createElement("span");
      span.setAttribute("data-field", field);
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function targetCell(job) {
    var td = document.createElement("td");
    if (!job.target_type) return td;
    var text = job.target_type + " " + job.target_id;
    if ((job.target_type === "container" || job.target_type === "image") && /^\d+$/.test(String(job.target_id))) {
      var a = document.createElement("a");
      a.href = "/" + job.target_type + "s/" + job.target_id + "/";
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function newRow(job) {
    var tr = document.createElement("tr");
    tr.id = "job-" + job.id;
    tr.setAttribute("data-job-id", job.id);
    var first = document.createElement("td");
    var link = document.createElement("a");
    link.href = table.getAttribute("data-detail-url").replace(/0\/$/, job.id + "/");
    link.textContent = "#" + job.id;
    first.appendChild(link);
    tr.appendChild(first);
    tr.appendChild(cell(job.kind, "kind"));
    tr.appendChild(targetCell(job));
    tr.appendChild(cell(job.host, "host"));
    var state = cell(job.state, "state");
    state.firstChild.className = "badge " + job.state;
    tr.appendChild(state);
    var prog = document.createElement("td");
    prog.className = "progress-cell";
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("data-field", "progress");
    var detail = document.createElement("span");
    detail.className = "detail";
    detail.setAttribute("data-field", "detail");
    prog.appendChild(bar);
    prog.appendChild(detail);
    if (FILE_KINDS[job.kind]) {
      var dl = document.createElement("a");
      dl.className = "download";
      dl.setAttribute("data-role", "download");
      dl.href = "/jobs/" + job.id + "/download/";
      dl.textContent = "Download";
      dl.hidden = true;
      prog.appendChild(dl);
    }
    tr.appendChild(prog);
    var created = document.createElement("td");
    var time = document.createElement("time");
    time.setAttribute("data-field", "created");
    time.setAttribute("data-local", "");
    created.appendChild(time);
    tr.appendChild(created);
    return tr;
  }

  function wanted(job) {
    var only = tbody && tbody.getAttribute("data-target");
    return !only || only === job.target_type + ":" + job.target_id;
  }

  var FINISHED = { succeeded: 1, failed: 1, cancelled: 1 };
  var shown = {}; // job id -> {state, attempts} last displayed

  // Events from different processes can arrive out of order: never move a finished job back,
  // unless a new attempt started.
  function stale(job) {
    var last = shown[job.id];
    if (!last) return false;
    if (job.attempts > last.attempts) return false;
    return FINISHED[last.state] && !FINISHED[job.state];
  }

  // On (re)connect, fetch the current state of every job shown that has not finished.
  document.addEventListener("berth:open", function () {
    var ids = {};
    document.querySelectorAll("[data-job-id]").forEach(function (el) {
      var badge = el.querySelector('[data-field="state"]');
      if (!badge || !FINISHED[badge.textContent.trim()]) ids[el.getAttribute("data-job-id")] = 1;
    });
    var list = Object.keys(ids);
    if (!list.length) return;
    fetch("/jobs/state/?ids=" + list.join(","), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { jobs: [] }; })
      .then(function (data) {
        data.jobs.forEach(function (job) {
          document.dispatchEvent(new CustomEvent("berth:job", { detail: job }));
        });
      })
      .catch(function () {});
  });

  document.addEventListener("berth:job", function (e) {
    var job = e.detail;
    if (stale(job)) return;
    shown[job.id] = { state: job.state, attempts: job.attempts };
    var values = Object.assign({}, job, { detail: job.error || job.message || "" });
    if (tbody && table && !document.getElementById("job-" + job.id) && wanted(job)) {
      tbody.insertBefore(newRow(job), tbody.firstChild);
      var empty = document.getElementById("jobs-empty");
      if (empty) empty.hidden = true;
    }
    var row = document.getElementById("job-" + job.id);
    if (row) row.className = "state-" + job.state;
    document.querySelectorAll('[data-job-id="' + job.id + '"]').forEach(function (el) {
      window.Berth.fill(el, values);
      el.querySelectorAll('[data-role="download"]').forEach(function (a) { a.hidden = job.state !== "succeeded"; });
      el.querySelectorAll('[data-role="no-file"]').forEach(function (s) { s.hidden = job.state === "succeeded"; });
      if (FINISHED[job.state]) {
        el.querySelectorAll('li progress[data-field="progress"]').forEach(function (p) { p.hidden = true; });
      }
    });
  });
})();
