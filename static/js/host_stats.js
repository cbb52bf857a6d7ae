// The host page's resource overview: the latest figures of each running container (GET
// /api/v1/hosts/<id>/stats every 5 s), sortable by CPU and memory (click a heading; again to reverse).
function human(n) {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

for (const table of document.querySelectorAll("[data-host-stats]")) {
  const body = table.querySelector("tbody");
  let rows = [];
  let key = "cpu", desc = true;
  const value = (r) => (key === "name" ? r.name : key === "cpu" ? (r.sample && r.sample.cpu_percent) || 0
    : (r.sample && r.sample.memory) || 0);

  function draw() {
    const sorted = [...rows].sort((a, b) => {
      const x = value(a), y = value(b);
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return desc ? -c : c;
    });
    body.replaceChildren(...sorted.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.containerId = r.id;
      const s = r.sample || {};
      const link = document.createElement("a");
      link.href = `/containers/${r.id}/`;
      link.textContent = r.name;
      const cells = [link, s.cpu_percent == null ? "—" : s.cpu_percent.toFixed(1),
        `${human(s.memory)} / ${human(s.memory_limit)}`, s.pids == null ? "—" : String(s.pids)];
      for (const c of cells) {
        const td = document.createElement("td");
        td.append(c);
        tr.append(td);
      }
      return tr;
    }));
    table.dataset.sortedBy = `${key}:${desc ? "desc" : "asc"}`;
  }

  for (const button of table.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => {
      desc = key === button.dataset.sort ? !desc : button.dataset.sort !== "name";
      key = button.dataset.sort;
      draw();
    });
  }

  async function poll() {
    try {
      const r = await fetch(`/api/v1/hosts/${table.dataset.hostStats}/stats`, { credentials: "same-origin" });
      if (r.ok) {
        rows = (await r.json()).containers;
        draw();
      }
    } catch (e) { /* the next poll tries again */ }
  }
  poll();
  setInterval(poll, 5000);
}
