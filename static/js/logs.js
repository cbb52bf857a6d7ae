// Live container logs (templates/containers/_logs.html): replays the tail, then follows over
// /ws/containers/<pk>/logs/. The server paces messages (batched, or sampled with a "dropped"
// count in a flood); here lines are queued and rendered once per animation frame, and the DOM keeps
// at most MAX_LINES lines (older ones are trimmed, with a notice), so a fast writer cannot freeze
// the page. ANSI colours go through ansi_up, which escapes HTML: log text never becomes markup.
import { AnsiUp } from "../vendor/ansi_up.js";

const MAX_LINES = 5000; // lines kept in the DOM
const MAX_PER_FRAME = 2000; // lines turned into DOM per animation frame
const RECONNECT_MAX = 15000;

function compareIds(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

function newConverter() {
  const conv = new AnsiUp();
  conv.escape_html = true; // the default, stated: log content is text, never markup
  conv.url_allowlist = {}; // no clickable links made from log content
  return conv;
}

class LogsPanel {
  constructor(root) {
    this.root = root;
    this.el = (role) => root.querySelector(`[data-role="${role}"]`);
    this.view = this.el("view");
    this.statusEl = this.el("status");
    this.noticeEl = this.el("notice");
    this.emptyEl = this.el("empty");
    this.matchesEl = this.el("matches");
    this.followBtn = this.el("follow");
    this.converters = { stdout: newConverter(), stderr: newConverter() };
    this.queue = []; // entries waiting for the next frame
    this.held = []; // entries that arrived while paused
    this.heldOverflow = 0;
    this.following = true;
    this.count = 0; // line elements in the view
    this.trimmed = 0; // lines removed from the top of the view
    this.dropped = 0; // lines the server left out (sampled mode)
    this.mode = "live";
    this.rate = 0;
    this.lastId = null;
    this.query = "";
    this.matches = [];
    this.current = -1;
    this.frame = 0;
    this.delay = 1000;
    this.closedFor = null;
    this.fatal = null;
    this.bind();
    this.connect();
  }

  bind() {
    this.followBtn.addEventListener("click", () => this.setFollowing(!this.following));
    const ts = this.el("timestamps");
    const tsField = this.el("download-timestamps");
    ts.addEventListener("change", () => {
      this.root.classList.toggle("show-ts", ts.checked);
      tsField.value = ts.checked ? "1" : "0";
    });
    this.el("streams").addEventListener("change", (e) => {
      this.root.classList.toggle("only-stdout", e.target.value === "stdout");
      this.root.classList.toggle("only-stderr", e.target.value === "stderr");
      this.search(this.query);
    });
    const search = this.el("search");
    let timer = 0;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.search(search.value), 150);
    });
    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        if (search.value !== this.query) this.search(search.value);
        this.nextMatch(e.shiftKey ? -1 : 1);
      } else if (e.key === "Escape") {
        search.value = "";
        this.search("");
      }
    });
    // Scrolling up stops the auto-scroll (reading older lines); back at the bottom it resumes.
    this.view.addEventListener("scroll", () => {
      this.stuck = this.view.scrollTop + this.view.clientHeight >= this.view.scrollHeight - 4;
    }, { passive: true });
    this.stuck = true;
  }

  // --- connection -------------------------------------------------------------------------------

  connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const tail = this.root.dataset.tail || "500";
    const socket = new WebSocket(`${scheme}${window.location.host}${this.root.dataset.wsPath}?tail=${tail}`);
    this.socket = socket;
    this.openedAt = 0;
    socket.onopen = () => {
      this.openedAt = Date.now();
      this.setStatus("live", "on");
      this.updateNotice();
    };
    socket.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      if (data.type === "lines") this.receive(data);
      else if (data.type === "error") this.closedFor = data.message;
    };
    socket.onclose = (e) => this.closed(e.code);
  }

  closed(code) {
    const reasons = {
      4403: "You may see this container but not its logs (operators and admins of its team may).",
      4404: "This container no longer exists, or you may not see it.",
      4400: this.closedFor || "The log view was asked for something it cannot show.",
    };
    if (code === 4401) {
      window.location.href = "/login/?next=" + encodeURIComponent(window.location.pathname);
      return;
    }
    if (code in reasons) {
      this.fatal = reasons[code];
      this.setStatus("closed", "off");
      this.setNotice(this.fatal, "bad");
      return;
    }
    // Back off from the first try unless the socket had stayed up (the server accepts, then closes with 1011
    // while the live stream's Redis is away: that must not become a reconnect every second).
    if (this.openedAt && Date.now() - this.openedAt > 5000) this.delay = 1000;
    this.setStatus(`reconnecting in ${Math.round(this.delay / 1000)} s…`, "off");
    if (this.closedFor) {
      this.setNotice(this.closedFor, "bad"); // e.g. the live stream is unavailable: download instead
      this.closedFor = null;
    }
    setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, RECONNECT_MAX);
  }

  setStatus(text, cls) {
    this.statusEl.textContent = text;
    this.statusEl.className = "logs-status " + (cls || "");
  }

  receive(data) {
    let lines = data.lines;
    if (data.tail && this.lastId) {
      // A reconnect replays the tail: keep only what this view has not shown yet.
      lines = lines.filter((l) => compareIds(l.id, this.lastId) > 0);
    }
    if (lines.length) this.lastId = lines[lines.length - 1].id;
    this.mode = data.mode;
    this.rate = data.rate || 0;
    if (data.dropped) {
      this.dropped += data.dropped;
      this.enqueue([{ gap: data.dropped }]);
    }
    this.enqueue(lines);
    this.updateNotice();
  }

  enqueue(items) {
    if (!items.length) return;
    if (!this.following) {
      for (const item of items) this.held.push(item);
      if (this.held.length > MAX_LINES) {
        const extra = this.held.length - MAX_LINES;
        this.heldOverflow += extra;
        this.held.splice(0, extra);
      }
      this.updateNotice();
      return;
    }
    for (const item of items) this.queue.push(item);
    if (this.queue.length > MAX_LINES) {
      // No frames while the tab is hidden: keep only what the view could show anyway.
      const extra = this.queue.length - MAX_LINES;
      this.trimmed += extra;
      this.queue.splice(0, extra);
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  setFollowing(on) {
    this.following = on;
    this.followBtn.textContent = on ? "Pause" : "Resume";
    this.followBtn.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) {
      if (this.heldOverflow) {
        this.queue.push({ gap: this.heldOverflow, paused: true });
        this.heldOverflow = 0;
      }
      const held = this.held;
      this.held = [];
      this.stuck = true;
      this.enqueue(held);
    }
    this.updateNotice();
  }

  // --- rendering --------------------------------------------------------------------------------

  lineElement(item) {
    const div = document.createElement("div");
    if (item.gap) {
      div.className = "ln gap";
      div.textContent = item.paused
        ? `⋯ ${plural(item.gap, "line")} arrived while paused and are not shown (download the full log)`
        : `⋯ ${plural(item.gap, "line")} not shown (sampled view; all are on disk)`;
      return div;
    }
    const err = item.stream === "stderr";
    div.className = err ? "ln err" : "ln out";
    div.dataset.id = item.id;
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = (item.time || "").replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1");
    const tx = document.createElement("span");
    tx.className = "tx";
    const text = item.log.replace(/\r?\n$/, "");
    // ansi_up escapes &, <, >, " and ' before adding its own colour spans.
    tx.innerHTML = this.converters[err ? "stderr" : "stdout"].ansi_to_html(text);
    div.append(ts, tx);
    if (this.query) this.highlight(div);
    return div;
  }

  render() {
    this.frame = 0;
    let batch = this.queue;
    if (batch.length > MAX_LINES) {
      // More than the view keeps: the older ones would be trimmed at once anyway.
      const skip = batch.length - MAX_LINES;
      this.trimmed += skip;
      batch = batch.slice(skip);
    }
    this.queue = batch.length > MAX_PER_FRAME ? batch.slice(MAX_PER_FRAME) : [];
    batch = batch.length > MAX_PER_FRAME ? batch.slice(0, MAX_PER_FRAME) : batch;
    if (batch.length) {
      if (this.emptyEl) { this.emptyEl.remove(); this.emptyEl = null; }
      const frag = document.createDocumentFragment();
      for (const item of batch) frag.appendChild(this.lineElement(item));
      this.view.appendChild(frag);
      this.count += batch.length;
      this.trim();
      if (this.query) this.updateMatchCount();
      if (this.following && this.stuck) this.view.scrollTop = this.view.scrollHeight;
    }
    this.updateNotice();
    if (this.queue.length) this.frame = requestAnimationFrame(() => this.render());
  }

  trim() {
    let extra = this.count - MAX_LINES;
    if (extra <= 0) return;
    this.trimmed += extra;
    this.count -= extra;
    while (extra-- > 0 && this.view.firstChild) this.view.firstChild.remove();
    if (this.query) this.matches = this.matches.filter((m) => m.isConnected);
  }

  updateNotice() {
    if (this.fatal) return; // the reason the view stopped stays in sight
    const parts = [];
    let cls = "info";
    if (this.mode === "sampled") {
      cls = "";
      parts.push(`Sampled view: the container writes about ${plural(this.rate, "line")}/s, more than this page ` +
        "shows; some lines are left out here (marked ⋯). Nothing is lost on disk: download the full log.");
    } else if (this.mode === "batched") {
      parts.push(`Batched view: about ${plural(this.rate, "line")}/s, shown in groups.`);
    }
    if (!this.following) {
      cls = cls || "info";
      const waiting = this.held.reduce((n, item) => n + (item.gap ? 0 : 1), 0) + this.heldOverflow;
      parts.push(`Paused: ${plural(waiting, "new line")} waiting.`);
    }
    if (this.dropped && this.mode !== "sampled") {
      parts.push(`${plural(this.dropped, "line")} were left out of this view while it was sampled.`);
    }
    if (this.trimmed) {
      parts.push(`Showing the last ${MAX_LINES.toLocaleString()} lines; ${plural(this.trimmed, "older line")} ` +
        "removed from the view.");
    }
    this.setNotice(parts.join(" "), cls);
  }

  setNotice(text, cls) {
    if (this.noticeEl.textContent !== text) this.noticeEl.textContent = text;
    this.noticeEl.className = "logs-notice " + (cls || "");
    this.noticeEl.hidden = !text;
  }

  // --- search -----------------------------------------------------------------------------------

  unhighlight(div) {
    for (const mark of div.querySelectorAll("mark")) mark.replaceWith(mark.textContent);
    div.normalize();
  }

  highlight(div) {
    // Wrap matches in <mark> inside the line's text nodes (the colour spans stay intact).
    const tx = div.querySelector(".tx");
    if (!tx) return;
    const q = this.query.toLowerCase();
    if (!tx.textContent.toLowerCase().includes(q)) return;
    const walker = document.createTreeWalker(tx, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (const node of nodes) {
      const text = node.nodeValue;
      const lower = text.toLowerCase();
      let at = lower.indexOf(q);
      if (at < 0) continue;
      const frag = document.createDocumentFragment();
      let from = 0;
      while (at >= 0) {
        if (at > from) frag.append(text.slice(from, at));
        const mark = document.createElement("mark");
        mark.textContent = text.slice(at, at + q.length);
        frag.append(mark);
        from = at + q.length;
        at = lower.indexOf(q, from);
      }
      if (from < text.length) frag.append(text.slice(from));
      node.replaceWith(frag);
    }
  }

  search(query) {
    const marked = new Set(Array.from(this.view.querySelectorAll(".ln mark"), (m) => m.closest(".ln")));
    for (const div of marked) this.unhighlight(div);
    this.query = query;
    this.current = -1;
    if (query) for (const div of this.view.querySelectorAll(".ln:not(.gap)")) this.highlight(div);
    this.updateMatchCount();
  }

  visibleMarks() {
    const marks = Array.from(this.view.querySelectorAll(".ln mark"));
    return marks.filter((m) => m.closest(".ln").offsetParent !== null);
  }

  updateMatchCount() {
    if (!this.query) {
      this.matches = [];
      this.matchesEl.textContent = "";
      return;
    }
    // New lines arriving must not lose the reader's place among the matches ("2 of 5").
    const here = this.matches[this.current];
    this.matches = this.visibleMarks();
    const n = this.matches.length;
    this.current = here ? this.matches.indexOf(here) : -1;
    this.matchesEl.textContent = !n ? "no matches"
      : this.current >= 0 ? `${this.current + 1} of ${n.toLocaleString()}`
        : `${n.toLocaleString()} match${n === 1 ? "" : "es"}`;
  }

  nextMatch(step) {
    this.updateMatchCount();
    if (!this.matches.length) return;
    const old = this.matches[this.current];
    if (old) old.classList.remove("current");
    this.current = (this.current + step + this.matches.length) % this.matches.length;
    const mark = this.matches[this.current];
    mark.classList.add("current");
    this.stuck = false; // reading a match: do not jump to the bottom under the reader
    mark.scrollIntoView({ block: "center" });
    this.matchesEl.textContent = `${this.current + 1} of ${this.matches.length}`;
  }
}

for (const root of document.querySelectorAll("[data-logs]")) {
  root.logsPanel = new LogsPanel(root);
}
