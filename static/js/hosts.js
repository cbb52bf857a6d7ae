// Hosts page: heartbeats arrive as host events; a host whose last heartbeat is older than the
// offline threshold turns offline even when no event says so (a dead worker sends nothing).
(function () {
  "use strict";
  var grid = document.getElementById("hosts");
  if (!grid) return;
  var offlineAfter = parseFloat(grid.getAttribute("data-offline-after")) || 15;

  // Actions that change many things at once (drain and move) ask first.
  grid.addEventListener("submit", function (e) {
    var question = e.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) e.preventDefault();
  });

  function setOnline(card, online) {
    var badge = card.querySelector('[data-field="online"]');
    badge.textContent = online ? "online" : "offline";
    badge.className = "badge " + (online ? "ok" : "off");
  }

  function ago(iso) {
    if (!iso) return "never";
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function refresh() {
    grid.querySelectorAll(".host").forEach(function (card) {
      var iso = card.getAttribute("data-last-heartbeat");
      var fresh = iso && (Date.now() - Date.parse(iso)) / 1000 < offlineAfter;
      setOnline(card, !!fresh);
      var t = card.querySelector('time[data-field="last_heartbeat"]');
      if (t) t.textContent = ago(iso);
    });
  }

  document.addEventListener("berth:host", function (e) {
    var host = e.detail;
    var card = document.getElementById("host-" + host.id);
    if (!card) { window.location.reload(); return; } // a new host: render it server-side
    card.setAttribute("data-last-heartbeat", host.last_heartbeat || "");
    window.Berth.fill(card, {
      kernel: host.kernel, cgroup_version: host.cgroup_version, cpus: host.cpus,
      runtimes: (host.runtimes || []).join(", "),
    });
    var labels = card.querySelector('[data-field="labels"]');
    if (labels && host.labels) {
      labels.textContent = "";
      Object.keys(host.labels).forEach(function (k) {
        var b = document.createElement("span");
        b.className = "badge";
        b.textContent = host.labels[k] ? k + "=" + host.labels[k] : k;
        labels.appendChild(b);
        labels.appendChild(document.createTextNode(" "));
      });
      if (!labels.childNodes.length) labels.textContent = "\u2014";
    }
    var cordon = card.querySelector('[data-field="cordon"]');
    if (cordon) {
      cordon.hidden = !host.cordoned;
      cordon.textContent = host.draining ? "draining" : "cordoned";
    }
    refresh();
  });
  refresh();
  window.setInterval(refresh, 2000);
})();
