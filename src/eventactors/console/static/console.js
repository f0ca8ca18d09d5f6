/* eventactors console: draws the charts from their JSON blocks, and fills a command's body. */
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777"];

  function drawChart(el) {
    var source = document.getElementById(el.dataset.chart);
    if (!source || typeof uPlot === "undefined") return;
    var chart = JSON.parse(source.textContent);
    var bars = el.dataset.kind === "bars";
    // The legend's time, like the axis, is in UTC (through tzDate below), and says so.
    var series = [{ label: "Time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" }];
    var data = [chart.times];
    var points = 0;
    chart.series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length];
      var spec = { label: s.name, stroke: color, width: 2, spanGaps: true };
      if (bars) {
        spec.fill = color + "99";
        spec.paths = uPlot.paths.bars({ size: [0.8, 48] });
        spec.points = { show: false };
      }
      series.push(spec);
      data.push(s.values);
      s.values.forEach(function (v) { if (v !== null) points += 1; });
    });
    el.textContent = "";
    if (!chart.times.length || !points) {
      el.textContent = "No data points yet.";
      el.dataset.points = "0";
      return;
    }
    var opts = {
      width: Math.max(320, el.clientWidth),
      height: 280,
      series: series,
      scales: { x: { time: true } },
      // The pages print times in UTC: the axis does too, whatever the browser's zone.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{}, { label: el.dataset.unit || "" }],
      legend: { live: true },
    };
    var plot = new uPlot(opts, data, el);
    el.dataset.points = String(points);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(320, el.clientWidth), height: 280 });
    });
  }

  function wireCommandForm(form) {
    var select = form.querySelector("select[name=command]");
    var body = form.querySelector("textarea[name=body]");
    if (!select || !body) return;
    var lastSample = body.value;
    select.addEventListener("change", function () {
      var sample = select.options[select.selectedIndex].dataset.sample || "{}";
      if (body.value === lastSample || body.value.trim() === "") body.value = sample;
      lastSample = sample;
    });
  }

  document.querySelectorAll("[data-chart]").forEach(drawChart);
  document.querySelectorAll("form.command").forEach(wireCommandForm);
})();
