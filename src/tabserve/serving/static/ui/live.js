// The live page: poll the server's aggregated metrics, diff consecutive snapshots for rates
// and windowed latency quantiles, and draw both as an SVG line chart.
"use strict";
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const url = "/ui/api/models/" + encodeURIComponent(root.dataset.model) + "/live";
  const PERIOD = 3000;
  const KEEP = 120;
  const history = [];
  let previous = null;
  const $ = (id) => document.getElementById(id);

  // Prometheus histogram_quantile over cumulative bucket counts.
  function quantile(q, bounds, counts) {
    const total = counts.length ? counts[counts.length - 1] : 0;
    if (total <= 0) return null;
    const rank = q * total;
    let prevBound = 0, prevCount = 0;
    for (let i = 0; i < bounds.length; i++) {
      const bound = bounds[i] === "+Inf" ? Infinity : bounds[i];
      if (counts[i] >= rank) {
        if (bound === Infinity) return prevBound;
        const inside = counts[i] - prevCount;
        return prevBound + (bound - prevBound) * (inside ? (rank - prevCount) / inside : 1);
      }
      prevBound = bound; prevCount = counts[i];
    }
    return prevBound;
  }

  const ms = (s) => (s === null || s === undefined ? "—" : (1000 * s).toFixed(2));

  function update(s) {
    let rate = null, p50 = s.latency.p50, p99 = s.latency.p99;
    let errorShare = s.requests.total ? s.requests.errors / s.requests.total : 0;
    if (previous) {
      const dt = s.time - previous.time;
      const dn = s.requests.total - previous.requests.total;
      rate = dt > 0 ? dn / dt : 0;
      if (dn > 0 && previous.latency.counts.length === s.latency.counts.length) {
        const diff = s.latency.counts.map((c, i) => c - previous.latency.counts[i]);
        p50 = quantile(0.5, s.latency.le, diff);
        p99 = quantile(0.99, s.latency.le, diff);
        errorShare = (s.requests.errors - previous.requests.errors) / dn;
      }
    }
    $("requests").textContent = String(Math.round(s.requests.total));
    $("rate").textContent = rate === null ? "—" : rate.toFixed(2);
    $("p50").textContent = ms(p50);
    $("p99").textContent = ms(p99);
    $("errors").textContent = (100 * errorShare).toFixed(1);
    $("rejected").textContent = String(Math.round(s.requests.rejected));
    $("predictions").textContent = String(Math.round(s.predictions));
    s.classes.forEach((c) => {
      const row = document.querySelector('#class-table tr[data-class="' + CSS.escape(c.label) + '"]');
      if (!row) return;
      row.querySelector(".live-count").textContent = String(Math.round(c.live));
      row.querySelector(".live-share").value = c.live_share;
      row.querySelector(".live-pct").textContent = (100 * c.live_share).toFixed(0) + "%";
    });
    s.drift.forEach((d) => {
      const row = document.querySelector('#drift-table tr[data-feature="' + CSS.escape(d.feature) + '"]');
      if (!row) return;
      row.querySelector(".psi").textContent = d.psi === null ? "—" : d.psi.toFixed(3);
      row.querySelector(".state").textContent = d.drifting ? "drifting" : (d.psi === null ? "no data yet" : "ok");
      row.classList.toggle("drifting", d.drifting);
      row.querySelector(".oor").textContent = String(Math.round(d.out_of_range));
      row.querySelector(".missing").textContent = String(Math.round(d.missing));
    });
    if (rate !== null) {
      history.push({ rate: rate, p99: p99 === null ? 0 : 1000 * p99 });
      if (history.length > KEEP) history.shift();
      draw();
    }
    previous = s;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function draw() {
    const svg = $("chart");
    // Drawn in the element's own pixel width, so labels are never stretched.
    const W = Math.max(200, Math.round(svg.clientWidth || 640)), H = 200, L = 8, R = 8, T = 18, B = 8;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.replaceChildren();
    svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    const series = [["rate", "rate", "req/s"], ["p99", "p99", "ms"]];
    series.forEach(([key, cls, unit], k) => {
      const max = Math.max(1e-9, ...history.map((h) => h[key]));
      const step = (W - L - R) / Math.max(1, KEEP - 1);
      const offset = (KEEP - history.length) * step;
      const points = history.map((h, i) =>
        (L + offset + i * step).toFixed(1) + "," + (H - B - (h[key] / max) * (H - T - B)).toFixed(1));
      svg.appendChild(el("polyline", { points: points.join(" "), class: "line " + cls }));
      svg.appendChild(el("text", { x: k === 0 ? L : W - R, y: 13, class: "label " + cls,
        "text-anchor": k === 0 ? "start" : "end" }, "max " + max.toFixed(2) + " " + unit));
    });
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        update(await response.json());
        $("refresh").textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshed every 3 seconds.";
      } else {
        $("refresh").textContent = "The server answered " + response.status + "; retrying.";
      }
    } catch (err) {
      $("refresh").textContent = "The server did not answer; retrying.";
    }
    setTimeout(poll, PERIOD);
  }
  poll();
})();
