// Jobs list and job detail: rows and fields follow job events without reloading.
(function () {
  "use strict";
  var tbody = document.getElementById("jobs");
  var table = document.getElementById("jobs-table");

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
    tr.appendChild(cell(job.target_type ? job.target_type + " " + job.target_id : "", null));
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
    tr.appendChild(prog);
    var created = document.createElement("td");
    var time = document.createElement("time");
    time.setAttribute("data-field", "created");
    time.setAttribute("data-local", "");
    created.appendChild(time);
    tr.appendChild(created);
    return tr;
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
    var ids = [];
    document.querySelectorAll("[data-job-id]").forEach(function (el) {
      var badge = el.querySelector('[data-field="state"]');
      if (!badge || !FINISHED[badge.textContent.trim()]) ids.push(el.getAttribute("data-job-id"));
    });
    if (!ids.length) return;
    fetch("/jobs/state/?ids=" + ids.join(","), { credentials: "same-origin" })
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
    if (tbody) {
      var row = document.getElementById("job-" + job.id);
      if (!row) {
        row = newRow(job);
        tbody.insertBefore(row, tbody.firstChild);
        var empty = document.getElementById("jobs-empty");
        if (empty) empty.hidden = true;
      }
      row.className = "state-" + job.state;
      window.Berth.fill(row, values);
    }
    var detailCard = document.getElementById("job-" + job.id + "-detail");
    if (detailCard) window.Berth.fill(detailCard, values);
  });
})();
