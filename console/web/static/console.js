// Draws the last hour of calls and refusals per second as an inline SVG,
// from /now/series (the process's own counters), and refreshes it.
"use strict";
(function () {
  const svg = document.getElementById("chart");
  if (!svg) return;
  const W = 720, H = 160, NS = "http://www.w3.org/2000/svg";
  function line(points, key, max, cls) {
    const span = 3600;
    const end = points.length ? points[points.length - 1].t : 0;
    const d = points.map(function (p, i) {
      const x = W - ((end - p.t) / span) * W;
      const y = H - 4 - (p[key] / max) * (H - 12);
      return (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
    }).join(" ");
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", "line " + cls);
    return path;
  }
  function draw(data) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const pts = data.points || [];
    let max = 1;
    pts.forEach(function (p) { max = Math.max(max, p.calls, p.refusals); });
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", 4); label.setAttribute("y", 12);
    label.textContent = "max " + max.toFixed(1) + "/s";
    svg.appendChild(label);
    if (pts.length) {
      svg.appendChild(line(pts, "calls", max, "calls"));
      svg.appendChild(line(pts, "refusals", max, "refusals"));
    }
  }
  function load() {
    fetch("/now/series", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { points: [] }; })
      .then(draw)
      .catch(function () {});
  }
  load();
  setInterval(load, 10000);
})();
