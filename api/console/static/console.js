// Minewatch console: CSRF header on htmx requests, refusals shown in place, ECharts from JSON blocks.
(function () {
  "use strict";
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });
  // A refused action (403 / 409 / 422) answers with the case body explaining why: show it.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var s = e.detail.xhr.status;
    if (s === 403 || s === 409 || s === 422 || s === 404) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  var COLORS = { normal: "#2e7d32", warning: "#f9a825", under_order: "#c62828", offline: "#757575" };

  function seriesOption(d) {
    var marks = [];
    function add(v, name, color) {
      if (v !== null && v !== undefined) marks.push({ yAxis: v, name: name, lineStyle: { color: color, type: "dashed" },
        label: { formatter: name + " " + v, color: color, position: "insideEndTop" } });
    }
    add(d.alarm[0], d.labels.alarm, "#f9a825"); add(d.alarm[1], d.labels.alarm, "#f9a825");
    add(d.power_off[0], d.labels.power_off, "#c62828"); add(d.power_off[1], d.labels.power_off, "#c62828");
    return {
      animation: false,
      title: d.title ? { text: d.title, left: 0, top: 0, textStyle: { fontSize: 13 } } : undefined,
      grid: { left: 48, right: 60, top: d.title ? 56 : 24, bottom: 24 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "time", splitNumber: 4, axisLabel: { hideOverlap: true } },
      // The thresholds stay in view even while the gas is far below them.
      yAxis: { type: "value", name: d.unit, scale: true, max: function (v) {
        var top = [d.alarm[0], d.power_off[0]].filter(function (x) { return x !== null && x !== undefined; });
        return top.length ? +Math.max(v.max, Math.max.apply(null, top) * 1.15).toPrecision(3) : null;
      } },
      series: d.series.map(function (s, i) {
        return { type: "line", name: s.name, data: s.data, showSymbol: false, lineStyle: { width: 1.5 },
          markLine: i === 0 ? { symbol: "none", silent: true, data: marks } : undefined };
      })
    };
  }

  function padded(values) {
    // Mines at the edge of the scope stay inside the plot: 10 % margin, at least 0.05 degrees.
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var pad = Math.max((hi - lo) * 0.1, 0.05);
    return { min: +(lo - pad).toFixed(2), max: +(hi + pad).toFixed(2) };
  }

  function mapOption(d) {
    var groups = {};
    // points arrive as compact arrays [longitude, latitude, status, code, name] (one JSON key per mine less)
    d.points = d.points.map(function (a) { return { value: [a[0], a[1]], status: a[2], code: a[3], name: a[4] }; });
    d.points.forEach(function (p) { (groups[p.status] = groups[p.status] || []).push(p); });
    var x = padded(d.points.map(function (p) { return p.value[0]; }));
    var y = padded(d.points.map(function (p) { return p.value[1]; }));
    return {
      animation: false,
      tooltip: { trigger: "item", formatter: function (p) { return p.data.name + "<br>" + p.data.code; } },
      legend: { top: 0 },
      grid: { left: 50, right: 16, top: 30, bottom: 30 },
      // the padded ends are not round numbers: label only the ticks between them
      xAxis: { type: "value", name: "E", min: x.min, max: x.max, axisLabel: { showMinLabel: false, showMaxLabel: false } },
      yAxis: { type: "value", name: "N", min: y.min, max: y.max, axisLabel: { showMinLabel: false, showMaxLabel: false } },
      series: Object.keys(groups).map(function (k) {
        return { type: "scatter", name: d.labels[k] || k, data: groups[k], symbolSize: k === "normal" ? 8 : 14,
          itemStyle: { color: COLORS[k] || "#1565c0" } };
      })
    };
  }

  function draw(root) {
    if (typeof echarts === "undefined") return;
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      var src = el.querySelector('script[type="application/json"]');
      if (!src) return;
      var data = JSON.parse(src.textContent);
      var old = echarts.getInstanceByDom(el);
      if (old) old.dispose();
      var chart = echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(el.dataset.chart === "map" ? mapOption(data) : seriesOption(data));
      if (el.dataset.chart === "map") {
        chart.on("click", function (p) { if (p.data && p.data.code) window.location = "/console/mines/" + p.data.code; });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.detail.target.parentNode || document); });
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var c = typeof echarts !== "undefined" && echarts.getInstanceByDom(el); if (c) c.resize();
    });
  });
})();
