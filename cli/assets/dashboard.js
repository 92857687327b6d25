// vigil serve's dashboard: draws one database's charts from /api/v1/history/<db> with uPlot. No inline
// script (the page's Content-Security-Policy forbids it) and no other origin. When every chart has drawn,
// <body> gets data-ready="1" and data-charts="N"; an error shows in a visible .error element.
"use strict";

(function () {
  function showError(message) {
    var box = document.querySelector(".error");
    if (!box) {
      box = document.createElement("div");
      box.className = "error";
      box.setAttribute("role", "alert");
      document.body.insertBefore(box, document.body.firstChild);
    }
    box.textContent = "Dashboard error: " + message;
  }

  window.addEventListener("error", function (event) {
    showError(event.message || "script error");
  });
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    showError(reason && reason.message ? reason.message : String(reason));
  });

  // Each chart: the field it draws, from the snapshots and/or the recent refreshes.
  var CHARTS = {
    file_size: { snapshots: "file_size", recent: "file_size", unit: "bytes" },
    freelist_count: { snapshots: "freelist_count", recent: "freelist_count", unit: "pages" },
    fragmentation: { snapshots: "fragmentation_pct", unit: "%" },
    wal_size: { snapshots: "wal_size", recent: "wal_size", unit: "bytes" },
    backup_age: { snapshots: "backup_age_seconds", recent: "backup_age_seconds", unit: "hours", scale: 1 / 3600 },
    growth_per_day: { snapshots: "growth_per_day", unit: "bytes/day" },
    slow_queries: { recent: "slow_queries_total", unit: "queries" },
  };

  function points(history, spec) {
    var out = [];
    function take(rows, field) {
      if (!field) return;
      rows.forEach(function (row) {
        var value = row[field];
        if (typeof row.at === "number" && typeof value === "number") {
          out.push([row.at, value * (spec.scale || 1)]);
        }
      });
    }
    take(history.snapshots || [], spec.snapshots);
    take(history.recent || [], spec.recent);
    out.sort(function (a, b) { return a[0] - b[0]; });
    return [out.map(function (p) { return p[0]; }), out.map(function (p) { return p[1]; })];
  }

  function draw(box, history, onDrawn) {
    var spec = CHARTS[box.dataset.series];
    if (!spec) throw new Error("unknown chart " + box.dataset.series);
    var data = points(history, spec);
    box.dataset.points = String(data[0].length);
    if (data[0].length === 0) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No data yet";
      box.appendChild(empty);
    }
    var drawn = false;
    var options = {
      width: Math.max(200, box.clientWidth - 8),
      height: 170,
      legend: { show: false },
      scales: { x: { time: true } },
      series: [{}, { label: box.dataset.title, stroke: "#1f4fd8", width: 2, points: { show: true, size: 5, fill: "#1f4fd8" } }],
      axes: [{}, { label: spec.unit, size: 70 }],
      hooks: {
        draw: [function (chart) {
          if (drawn) return;
          drawn = true;
          var rect = chart.over.getBoundingClientRect();
          box.dataset.box = [rect.left + window.scrollX, rect.top + window.scrollY, rect.width, rect.height].map(Math.round).join(",");
          onDrawn();
        }],
      },
    };
    new uPlot(options, data, box);
  }

  function ready(count) {
    document.body.dataset.charts = String(count);
    document.body.dataset.ready = "1";
  }

  function start() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll(".chart"));
    var label = document.body.dataset.label;
    if (label === undefined || boxes.length === 0) {
      ready(0);
      return;
    }
    fetch("/api/v1/history/" + encodeURIComponent(label), { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("/api/v1/history answered " + response.status);
        return response.json();
      })
      .then(function (history) {
        if (history.history_error) {
          var note = document.getElementById("history-note");
          if (note) note.textContent = "Snapshots could not be read: " + history.history_error;
        }
        var left = boxes.length;
        boxes.forEach(function (box) {
          draw(box, history, function () {
            left -= 1;
            if (left === 0) ready(boxes.length);
          });
        });
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
