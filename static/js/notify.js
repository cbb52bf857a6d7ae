// Notifications: a job of yours that finishes while this page does not show it (you are on another page)
// pops up a short note with a link to what it made or acted on. Only the signed-in user's own jobs.
(function () {
  "use strict";
  var me = document.body.getAttribute("data-user");
  var FINISHED = { succeeded: "done", failed: "failed", cancelled: "cancelled" };
  var told = {};
  var box = null;

  function region() {
    if (box) return box;
    box = document.createElement("div");
    box.className = "toasts";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("data-role", "notifications");
    document.body.appendChild(box);
    return box;
  }

  function targetLink(job) {
    var result = job.result || {};
    if (result.image_id) return "/images/" + result.image_id + "/";
    if ((job.target_type === "container" || job.target_type === "image") && /^\d+$/.test(String(job.target_id))) {
      return "/" + job.target_type + "s/" + job.target_id + "/";
    }
    return "/jobs/" + job.id + "/";
  }

  document.addEventListener("berth:job", function (e) {
    var job = e.detail;
    if (!me || String(job.owner_id) !== me || !FINISHED[job.state] || told[job.id]) return;
    told[job.id] = true;
    // The page already shows this job (its row, banner, file entry, or a form following it): it says so there.
    if (document.querySelector('[data-job-id="' + job.id + '"]')) return;
    if (window.Berth.following && window.Berth.following.has(job.id)) return;
    var note = document.createElement("div");
    note.className = "toast state-" + job.state;
    note.setAttribute("data-notice-job", job.id);
    var link = document.createElement("a");
    link.href = targetLink(job);
    link.textContent = job.kind + " #" + job.id + " " + FINISHED[job.state];
    note.appendChild(link);
    if (job.state === "failed" && job.error) {
      var why = document.createElement("span");
      why.className = "detail";
      why.textContent = job.error;
      note.appendChild(why);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { note.remove(); });
    note.appendChild(close);
    region().appendChild(note);
    window.setTimeout(function () { note.remove(); }, 15000);
  });
})();
