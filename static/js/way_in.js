// The way in, on the container page: a console (xterm.js over /ws/containers/<pk>/console/), stats charts
// (uPlot, from /api/v1/containers/<pk>/stats: an hour of history, then a sample every 2 s) and a file browser
// (list, download as tar, upload one file). Text from the container is never turned into markup.
import { Terminal } from "../vendor/xterm/lib/xterm.mjs";
import { FitAddon } from "../vendor/xterm-fit/addon-fit.mjs";
import uPlot from "../vendor/uplot/uPlot.esm.js";

const root = document.querySelector("[data-way-in]");
const pk = root && root.dataset.containerId;

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return m ? decodeURIComponent(m[1]) : input ? input.value : "";
}

async function apiError(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch (e) {
    return response.statusText;
  }
}

// ---- console -------------------------------------------------------------------------------------------

function setupConsole() {
  const card = root.querySelector("[data-role=console]");
  if (!card) return;
  const form = card.querySelector("[data-role=console-form]");
  const closeBtn = card.querySelector("[data-role=console-close]");
  const status = card.querySelector("[data-role=console-status]");
  const box = card.querySelector("[data-role=terminal]");
  const storeKey = `berth-console-${pk}`;
  let term = null, fit = null, ws = null, observer = null;

  function close() {
    if (ws) ws.close();
    ws = null;
    if (observer) observer.disconnect();
    closeBtn.hidden = true;
  }

  function open(query) {
    close();
    box.hidden = false;
    if (!term) {
      term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 5000 });
      fit = new FitAddon();
      term.loadAddon(fit);
      term.open(box);
      term.onData((data) => { if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "input", data })); });
      term.onResize(({ rows, cols }) => {
        if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "resize", rows, cols }));
      });
    } else {
      term.reset();
    }
    fit.fit();
    const params = new URLSearchParams(query);
    params.set("rows", term.rows);
    params.set("cols", term.cols);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/ws/containers/${pk}/console/?${params}`);
    ws.binaryType = "arraybuffer";
    status.textContent = "Connecting…";
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") {
        term.write(new Uint8Array(ev.data));
        return;
      }
      const msg = JSON.parse(ev.data);
      if (msg.type === "session") {
        sessionStorage.setItem(storeKey, msg.session);
        status.textContent = `Session ${msg.session.slice(0, 12)} — connected`;
        closeBtn.hidden = false;
        term.focus();
      } else if (msg.type === "exit") {
        sessionStorage.removeItem(storeKey);
        status.textContent = `The session ended (exit code ${msg.exit_code})${msg.error ? ": " + msg.error : ""}.`;
      } else if (msg.type === "error") {
        sessionStorage.removeItem(storeKey);
        status.textContent = msg.message;
      }
    };
    ws.onclose = (ev) => {
      if (ev.code === 4403) status.textContent = status.textContent || "You may not open a console here (operator role).";
      closeBtn.hidden = true;
    };
    observer = new ResizeObserver(() => fit.fit());
    observer.observe(box);
    window.addEventListener("resize", () => fit && fit.fit());
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const command = form.elements.command.value.trim();
    sessionStorage.removeItem(storeKey);
    open(command ? { command } : {});
  });
  closeBtn.addEventListener("click", () => {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "input", data: "\u0004" }));
    close();
  });
  const previous = sessionStorage.getItem(storeKey);
  if (previous && root.dataset.running) open({ session: previous });  // a reload: back to the same session
  if (!root.dataset.running) form.querySelector("button").disabled = true;
}

// ---- stats ---------------------------------------------------------------------------------------------

function human(n) {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

function setupStats() {
  const card = root.querySelector("[data-role=stats]");
  if (!card) return;
  const now = card.querySelector("[data-role=stats-now]");
  const specs = {
    cpu: { label: "CPU %", series: ["cpu_percent"] },
    memory: { label: "Memory", series: ["memory"], bytes: true },
    pids: { label: "Processes", series: ["pids"] },
    net: { label: "Network B/s", series: ["net_rx", "net_tx"], rate: true, bytes: true },
    block: { label: "Block B/s", series: ["block_read", "block_write"], rate: true, bytes: true },
  };
  const charts = {};
  const colors = ["#2563eb", "#dc2626"];
  for (const [name, spec] of Object.entries(specs)) {
    const el = card.querySelector(`[data-chart=${name}]`);
    const opts = {
      title: spec.label, width: Math.max(260, el.clientWidth || 300), height: 160,
      series: [{}, ...spec.series.map((s, i) => ({ label: s, stroke: colors[i], width: 1.5,
        value: (u, v) => (v == null ? "—" : spec.bytes ? human(v) : v.toFixed(spec.series[0] === "cpu_percent" ? 1 : 0)) }))],
      axes: [{}, { values: (u, vals) => vals.map((v) => (spec.bytes ? human(v) : v)) , size: 70 }],
    };
    charts[name] = { plot: new uPlot(opts, [[], ...spec.series.map(() => [])], el), spec, el };
  }
  let samples = [];

  function draw() {
    const t = samples.map((s) => s.time);
    for (const { plot, spec } of Object.values(charts)) {
      const cols = spec.series.map((f) => samples.map((s, i) => {
        if (!spec.rate) return s[f];
        if (i === 0 || s[f] == null || samples[i - 1][f] == null) return null;
        const dt = s.time - samples[i - 1].time;
        return dt > 0 ? Math.max(0, (s[f] - samples[i - 1][f]) / dt) : null;
      }));
      plot.setData([t, ...cols]);
    }
    card.dataset.points = String(samples.length);
    const last = samples[samples.length - 1];
    if (last) {
      now.textContent = `CPU ${last.cpu_percent == null ? "—" : last.cpu_percent.toFixed(1) + " %"} · memory ${human(last.memory)} / ${human(last.memory_limit)} · ${last.pids} processes`;
    }
  }

  async function poll(first) {
    try {
      const r = await fetch(`/api/v1/containers/${pk}/stats${first ? "" : "?seconds=10"}`, { credentials: "same-origin" });
      if (!r.ok) {
        now.textContent = await apiError(r);
        // Refused (the role was taken away, or the container is gone): asking again every 2 s cannot help.
        if (r.status === 401 || r.status === 403 || r.status === 404) stop();
        return;
      }
      const body = await r.json();
      if (first) samples = body.history;
      else for (const s of body.history) if (!samples.length || s.time > samples[samples.length - 1].time) samples.push(s);
      const cutoff = Date.now() / 1000 - 3600;
      samples = samples.filter((s) => s.time >= cutoff);
      draw();
    } catch (e) {
      now.textContent = "Stats are unavailable right now.";
    }
  }
  let timer = 0;
  function stop() { window.clearInterval(timer); timer = 0; }
  poll(true);
  if (root.dataset.running) timer = window.setInterval(() => poll(false), 2000);
}

// ---- files ---------------------------------------------------------------------------------------------

function tarOf(name, bytes) {
  // One regular file as a ustar archive (what PUT …/archive takes).
  const header = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (text, off, len) => header.set(enc.encode(text).slice(0, len), off);
  put(name, 0, 100);
  put("0000644\0", 100, 8);
  put("0000000\0", 108, 8);
  put("0000000\0", 116, 8);
  put(bytes.length.toString(8).padStart(11, "0") + "\0", 124, 12);
  put(Math.floor(Date.now() / 1000).toString(8).padStart(11, "0") + "\0", 136, 12);
  put("        ", 148, 8);
  put("0", 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of header) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  const pad = (512 - (bytes.length % 512)) % 512;
  const out = new Uint8Array(512 + bytes.length + pad + 1024);
  out.set(header, 0);
  out.set(bytes, 512);
  return out;
}

function setupFiles() {
  const card = root.querySelector("[data-role=browser]");
  if (!card) return;
  const go = card.querySelector("[data-role=browser-go]");
  const upload = card.querySelector("[data-role=browser-upload]");
  const rows = card.querySelector("[data-role=browser-rows]");
  const status = card.querySelector("[data-role=browser-status]");
  const download = card.querySelector("[data-role=browser-download]");
  const join = (dir, name) => (dir.endsWith("/") ? dir : dir + "/") + name;

  async function list(path) {
    go.elements.path.value = path;
    download.href = `/api/v1/containers/${pk}/archive?path=${encodeURIComponent(path)}`;
    status.textContent = "Listing…";
    const r = await fetch(`/api/v1/containers/${pk}/files?path=${encodeURIComponent(path)}`, { credentials: "same-origin" });
    if (!r.ok) { status.textContent = await apiError(r); return; }
    const body = await r.json();
    rows.replaceChildren();
    if (path !== "/") body.entries.unshift({ name: "..", type: "dir", size: 0, mode: 0 });
    for (const e of body.entries) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const a = document.createElement("a");
      a.textContent = e.name;
      if (e.type === "dir") {
        a.href = "#";
        a.addEventListener("click", (ev) => {
          ev.preventDefault();
          list(e.name === ".." ? path.replace(/\/[^/]+\/?$/, "") || "/" : join(path, e.name));
        });
      } else {
        a.href = `/api/v1/containers/${pk}/archive?path=${encodeURIComponent(join(path, e.name))}`;
        a.title = "download (tar)";
      }
      name.append(a);
      const cells = [e.type, e.type === "file" ? human(e.size) : "", e.mode ? e.mode.toString(8) : ""].map((t) => {
        const td = document.createElement("td");
        td.textContent = t;
        return td;
      });
      tr.append(name, ...cells);
      rows.append(tr);
    }
    status.textContent = `${body.entries.length} entries in ${path}`;
  }

  go.addEventListener("submit", (ev) => { ev.preventDefault(); list(go.elements.path.value.trim() || "/"); });
  if (upload) {
    upload.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = upload.elements.file.files[0];
      if (!file) { status.textContent = "Choose a file first."; return; }
      const dir = go.elements.path.value.trim() || "/";
      status.textContent = `Uploading ${file.name}…`;
      const body = tarOf(file.name, new Uint8Array(await file.arrayBuffer()));
      const r = await fetch(`/api/v1/containers/${pk}/archive?path=${encodeURIComponent(dir)}`, {
        method: "PUT", body, credentials: "same-origin",
        headers: { "Content-Type": "application/x-tar", "X-CSRFToken": csrf() },
      });
      if (!r.ok) { status.textContent = await apiError(r); return; }
      await list(dir);
      status.textContent = `Uploaded ${file.name} into ${dir}.`;
    });
  }
  // Listing is a job on the host (audited): it runs when asked, not on every page view.
  if (root.dataset.running) status.textContent = "Press List to see the files of the path.";
  else status.textContent = "Start the container to browse its files.";
}

if (root) {
  setupConsole();
  setupStats();
  setupFiles();
}
