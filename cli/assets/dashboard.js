// vigil serve's dashboard. A database's page carries its history as a JSON data block (#history-data, the
// body of /api/v1/history/<db>): the charts are drawn from it at once with uPlot (this deferred script runs
// before DOMContentLoaded, so a browser's load event already sees them), then /api/v1/history/<db> is polled
// every data-poll-ms. The fleet page carries /api/v1/databases's JSON (#fleet-data) and polls it to keep the
// statuses current. No inline script runs (the page's Content-Security-Policy forbids it) and no other origin
// is asked. When every chart has drawn, <body> gets data-ready="1" and data-charts="N"; an error shows in a
// visible .error element.
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
    // Also to the console: a headless browser's log then names it.
    if (window.console) console.error("vigil dashboard: " + message);
  }

  function clearError() {
    var box = document.querySelector(".error");
    if (box) box.parentNode.removeChild(box);
  }

  window.addEventListener("error", function (event) {
    showError(event.message || "script error");
  });
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    showError(reason && reason.message ? reason.message : String(reason));
  });

  // Axis labels: binary units for bytes, the largest whole unit for ages.
  // digits: decimals to show; undefined for the usual (none from 100 up, else one).
  function number(value, digits) {
    if (digits !== undefined) {
      return value.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    }
    var rounded = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
    return rounded.toLocaleString("en");
  }

  function bytes(value, digits) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var n = value;
    var i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return number(n, digits) + " " + units[i];
  }

  function age(seconds, digits) {
    var abs = Math.abs(seconds);
    if (abs >= 2 * 86400) return number(seconds / 86400, digits) + " d";
    if (abs >= 2 * 3600) return number(seconds / 3600, digits) + " h";
    if (abs >= 120) return number(seconds / 60, digits) + " min";
    return number(seconds, digits) + " s";
  }

  // An axis' tick labels, each distinct: a small range ("1.2 MiB" three times) gets more decimals.
  function tickLabels(format, splits) {
    var out = splits.map(function (v) { return format(v); });
    for (var digits = 1; digits <= 6 && new Set(out).size < out.length; digits += 1) {
      out = splits.map(function (v) { return format(v, digits); });
    }
    return out;
  }

  // A single instant (one point, or none) gets a day around it: uPlot widened a single point to 1000 days.
  function timeRange(chart, min, max) {
    var xs = (chart.data && chart.data[0]) || [];
    var only = xs.length > 0 && xs[0] === xs[xs.length - 1] ? xs[0] : min === max ? min : null;
    return only === null ? [min, max] : [only - 43200, only + 43200];
  }

  // Tick steps: powers of two for bytes (256 KiB, 512 KiB, …), whole units of time for ages.
  var BINARY = [];
  for (var power = 0; power < 50; power += 1) BINARY.push(Math.pow(2, power));
  var AGES = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 2592000, 31536000];
  var STEPS = { bytes: BINARY, "bytes/day": BINARY, age: AGES };

  var FORMATS = {
    bytes: bytes,
    "bytes/day": function (v, digits) { return bytes(v, digits) + "/d"; },
    age: age,
    "%": function (v, digits) { return number(v, digits) + " %"; },
    count: number,
  };

  // Each chart: the field it draws from the snapshots and/or the recent refreshes, and its axis format.
  var CHARTS = {
    file_size: { snapshots: "file_size", recent: "file_size", unit: "bytes" },
    freelist_count: { snapshots: "freelist_count", recent: "freelist_count", unit: "count", label: "pages" },
    fragmentation: { snapshots: "fragmentation_pct", unit: "%" },
    wal_size: { snapshots: "wal_size", recent: "wal_size", unit: "bytes" },
    backup_age: { snapshots: "backup_age_seconds", recent: "backup_age_seconds", unit: "age" },
    growth_per_day: { snapshots: "growth_per_day", unit: "bytes/day" },
    slow_queries: { recent: "slow_queries_total", unit: "count", label: "queries" },
  };

  function points(history, spec) {
    var out = [];
    function take(rows, field) {
      if (!field) return;
      rows.forEach(function (row) {
        var value = row[field];
        if (typeof row.at === "number" && typeof value === "number") out.push([row.at, value]);
      });
    }
    take(history.snapshots || [], spec.snapshots);
    take(history.recent || [], spec.recent);
    out.sort(function (a, b) { return a[0] - b[0]; });
    return [out.map(function (p) { return p[0]; }), out.map(function (p) { return p[1]; })];
  }

  function markEmpty(box, count) {
    box.dataset.points = String(count);
    var empty = box.querySelector(".empty");
    if (count === 0 && !empty) {
      empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No data yet";
      box.appendChild(empty);
    } else if (count > 0 && empty) {
      box.removeChild(empty);
    }
  }

  // Draws one chart; returns its uPlot. onDrawn runs after its first drawing.
  function draw(box, history, onDrawn) {
    var spec = CHARTS[box.dataset.series];
    if (!spec) throw new Error("unknown chart " + box.dataset.series);
    var data = points(history, spec);
    markEmpty(box, data[0].length);
    var format = FORMATS[spec.unit];
    var drawn = false;
    var options = {
      width: Math.max(200, box.clientWidth - 8),
      height: 170,
      legend: { show: false },
      scales: { x: { time: true, range: timeRange } },
      series: [{}, { label: box.dataset.title, stroke: "#1f4fd8", width: 2, points: { show: true, size: 5, fill: "#1f4fd8" } }],
      axes: [{}, {
        label: spec.label,
        size: 78,
        incrs: STEPS[spec.unit],
        values: function (chart, splits) {
          var labels = tickLabels(format, splits);
          box.dataset.ticks = labels.join("|");
          return labels;
        },
      }],
      hooks: {
        draw: [function (chart) {
          if (drawn) return;
          drawn = true;
          var rect = chart.over.getBoundingClientRect();
          box.dataset.box = [rect.left + window.scrollX, rect.top + window.scrollY, rect.width, rect.height].map(Math.round).join(",");
          box.dataset.xspan = String(Math.round(chart.scales.x.max - chart.scales.x.min));
          onDrawn();
        }],
      },
    };
    var chart = new uPlot(options, data, box);
    chart.spec = spec;
    return chart;
  }

  function ready(count) {
    document.body.dataset.charts = String(count);
    document.body.dataset.ready = "1";
  }

  function embedded(id) {
    var block = document.getElementById(id);
    if (!block) throw new Error("the page has no #" + id + " data block");
    return JSON.parse(block.textContent);
  }

  function getJson(path) {
    return fetch(path, { headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) throw new Error(path + " answered " + response.status);
      return response.json();
    });
  }

  function every(ms, path, apply) {
    window.setInterval(function () {
      getJson(path).then(function (data) {
        clearError();
        apply(data);
      }, function (error) {
        showError(error.message);
      });
    }, Math.max(1000, ms || 0));
  }

  function showHistoryError(history) {
    var note = document.getElementById("history-note");
    if (note && history.history_error) note.textContent = "Snapshots could not be read: " + history.history_error;
  }

  // The name comes from the JSON data block, never from an attribute: the HTML parser turns a CR in an
  // attribute into LF, and the page would poll another name.
  function startDatabase(boxes) {
    var history = embedded("history-data");
    var label = history.db;
    showHistoryError(history);
    var left = boxes.length;
    var charts = boxes.map(function (box) {
      return draw(box, history, function () {
        left -= 1;
        if (left === 0) ready(boxes.length);
      });
    });
    every(Number(document.body.dataset.pollMs), "/api/v1/history/" + encodeURIComponent(label), function (fresh) {
      showHistoryError(fresh);
      charts.forEach(function (chart, i) {
        var data = points(fresh, chart.spec);
        markEmpty(boxes[i], data[0].length);
        chart.setData(data);
      });
    });
  }

  // The fleet page: each row's status badge follows /api/v1/databases.
  function updateFleet(fleet) {
    var note = document.getElementById("refreshed");
    if (note && typeof fleet.generated_at === "string") {
      note.textContent = "Refreshed " + fleet.generated_at.replace("T", " ").slice(0, 19) + " UTC.";
    }
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-db]"));
    (fleet.databases || []).forEach(function (db) {
      // data-db is percent-encoded (a raw CR would come back as LF).
      var row = rows.filter(function (r) { return decodeURIComponent(r.dataset.db) === db.db; })[0];
      var badge = row && row.cells[1] && row.cells[1].querySelector(".status");
      if (!badge) return;
      var known = ["ok", "info", "warning", "critical"].indexOf(db.status) >= 0;
      badge.className = "status st-" + (known ? db.status : "unknown");
      badge.textContent = String(db.status);
    });
  }

  function startFleet() {
    var fleet = embedded("fleet-data");
    updateFleet(fleet);
    ready(0);
    every(5000, "/api/v1/databases", updateFleet);
  }

  function start() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll(".chart"));
    if (document.body.dataset.label !== undefined && boxes.length > 0) {
      startDatabase(boxes);
    } else if (document.getElementById("fleet-data")) {
      startFleet();
    } else {
      ready(0);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
