// The container page's section bar: one link per section marked data-tab="Label" (logs, downloads, inspect,
// jobs, and whatever later sections such as a console or stats add), each one click away; the bar follows
// the section in view. Sections stay in the page (nothing hidden), so links, search and print still work.
(function () {
  "use strict";
  var bar = document.querySelector('[data-role="tabs"]');
  if (!bar) return;
  var links = [bar.querySelector("a")];
  document.querySelectorAll("[data-tab]").forEach(function (section) {
    if (!section.id) return;
    var a = document.createElement("a");
    a.href = "#" + section.id;
    a.textContent = section.getAttribute("data-tab");
    bar.appendChild(a);
    links.push(a);
  });
  function mark(id) {
    links.forEach(function (a) {
      if (a.getAttribute("href") === "#" + id) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    });
  }
  bar.addEventListener("click", function (e) {
    var a = e.target.closest("a");
    if (!a) return;
    var target = document.getElementById(a.getAttribute("href").slice(1));
    if (!target) return;
    e.preventDefault();
    target.scrollIntoView({ block: "start" });
    if (target.tagName === "SECTION") { target.querySelectorAll("details").forEach(function (d) { d.open = true; }); }
    window.history.replaceState(null, "", a.getAttribute("href"));
    mark(target.id);
  });
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (en) { if (en.isIntersecting) mark(en.target.id); });
    }, { rootMargin: "-20% 0px -70% 0px" });
    links.forEach(function (a) {
      var el = document.getElementById(a.getAttribute("href").slice(1));
      if (el) io.observe(el);
    });
  }
})();
