// Live events from /ws/events/: each JSON event is re-dispatched as a "berth:event" DOM event on
// document (detail = the event), so page scripts only listen. Reconnects with backoff; a 4401 close
// (not signed in) sends the browser to the login page.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  var delay = 1000;
  var socket = null;

  function setLive(on) {
    if (!status) return;
    status.textContent = on ? "live" : "offline";
    status.classList.toggle("on", on);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/events/");
    var openedAt = 0;
    socket.onopen = function () {
      openedAt = Date.now();
      setLive(true);
      // Events sent before this moment are not replayed: pages resync on this signal.
      document.dispatchEvent(new CustomEvent("berth:open"));
    };
    socket.onmessage = function (msg) {
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      document.dispatchEvent(new CustomEvent("berth:event", { detail: event }));
      document.dispatchEvent(new CustomEvent("berth:" + event.type, { detail: event }));
    };
    socket.onclose = function (e) {
      setLive(false);
      if (e.code === 4401) {
        window.location.href = "/login/?next=" + encodeURIComponent(window.location.pathname);
        return;
      }
      // Back off from the first try unless the socket had stayed up: the server accepts, then closes with
      // 1011 when its channel layer is away, and that must not turn into a reconnect every second.
      if (openedAt && Date.now() - openedAt > 5000) delay = 1000;
      window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }

  // One date format everywhere (YYYY-MM-DD HH:MM:SS) in the browser's time zone; the server renders
  // UTC in the same format before this runs.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function formatDate(iso) {
    var d = iso ? new Date(iso) : null;
    if (!d || isNaN(d.getTime())) return "—";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " "
      + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  var zone = (Intl.DateTimeFormat().resolvedOptions() || {}).timeZone || "local time";
  function localTime(el) {
    el.textContent = formatDate(el.getAttribute("datetime"));
    el.title = zone;
  }

  window.Berth = window.Berth || {};
  window.Berth.formatDate = formatDate;
  window.Berth.following = new Set(); // job ids a page's own form follows (notify.js leaves them to it)
  // Set every [data-field] inside `root` from `values` (text, progress value, badge class, datetime).
  window.Berth.fill = function (root, values) {
    root.querySelectorAll("[data-field]").forEach(function (el) {
      var key = el.getAttribute("data-field");
      if (!(key in values)) return;
      var v = values[key];
      if (el.tagName === "PROGRESS") { el.value = v; el.textContent = v + "%"; return; }
      if (el.tagName === "TIME") { el.setAttribute("datetime", v || ""); localTime(el); return; }
      if (el.classList.contains("badge")) { el.className = "badge " + v; }
      if (v === null || v === undefined || v === "") v = "—";
      el.textContent = typeof v === "object" ? JSON.stringify(v, null, 2) : String(v);
    });
  };
  document.querySelectorAll("time[data-local]").forEach(localTime);
  connect();
})();
