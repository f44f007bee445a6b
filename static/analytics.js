/* ispflow traffic pages: draw the bandwidth and top-report charts with uPlot from the pages'
 * JSON endpoints, keep the table beside each chart in step, and change the period without
 * reloading the page. Loaded as a file (never inline) so a Content-Security-Policy without
 * 'unsafe-inline' applies; data arrive only as JSON and are written with textContent. */
(function () {
  "use strict";

  var PREFIXES = ["", "k", "M", "G", "T", "P"];

  function decimal(value, unit) {
    var i = 0;
    while (Math.abs(value) >= 1000 && i < PREFIXES.length - 1) { value /= 1000; i += 1; }
    return (i === 0 ? value.toFixed(0) : value.toPrecision(3)) + " " + PREFIXES[i] + unit;
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) { throw new Error(data.error || response.statusText); }
          return data;
        });
      });
  }

  function cell(row, text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) { td.className = "num"; }
    row.appendChild(td);
    return td;
  }

  function fillBody(table, rows) {
    var body = table.tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    rows.forEach(function (values) {
      var tr = document.createElement("tr");
      values.forEach(function (value) {
        if (value && value.links) {
          var td = cell(tr, "", false);
          value.links.forEach(function (link) {
            var a = document.createElement("a");
            a.href = link.href;
            a.textContent = link.label;
            td.appendChild(a);
            td.appendChild(document.createTextNode(" "));
          });
        } else {
          cell(tr, value === null || value === undefined ? "" : String(value), typeof value === "number");
        }
      });
      body.appendChild(tr);
    });
  }

  function setField(name, text) {
    document.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = text; });
  }

  function showError(container, message) {
    var box = container.parentNode.querySelector('[data-field="error"]');
    if (!box) { return; }
    box.textContent = message || "";
    box.hidden = !message;
  }

  function chartWidth(el) { return Math.max(el.clientWidth || 0, 320); }

  function replaceChart(el, options, data) {
    if (el.uplot) { el.uplot.destroy(); }
    el.uplot = new uPlot(options, data, el);
    el.dataset.drawn = String(data[0].length);
  }

  function drawBandwidth(el, data) {
    var rate = function (u, values) { return values.map(function (v) { return decimal(v, "bit/s"); }); };
    replaceChart(el, {
      width: chartWidth(el), height: 300,
      series: [
        {},
        { label: "in", stroke: "#1d3557", fill: "rgba(29,53,87,0.12)", width: 2, value: function (u, v) { return v === null ? "—" : decimal(v, "bit/s"); } },
        { label: "out", stroke: "#e76f51", width: 2, value: function (u, v) { return v === null ? "—" : decimal(v, "bit/s"); } }
      ],
      axes: [{}, { values: rate, size: 80 }]
    }, [data.time, data.in_bps, data.out_bps]);
    setField("label", data.label);
    setField("perspective", data.perspective);
    setField("start", data.start);
    setField("end", data.end);
    setField("step", String(data.step_seconds / 60));
    var stats = document.getElementById("bandwidth-stats");
    if (stats) {
      fillBody(stats, data.stats_text.map(function (s) { return [s.direction, s.volume, s.peak, s.average, s.p95]; }));
    }
    var table = document.getElementById("bandwidth-table");
    if (table) {
      fillBody(table, data.local_time.map(function (t, i) { return [t, data.in_text[i], data.out_text[i]]; }));
    }
  }

  function drawTop(el, data) {
    var ranked = data.rows.filter(function (r) { return !r.other; });
    var key = data.order === "flows" ? "flows" : "bytes";
    var xs = ranked.map(function (r, i) { return i + 1; });
    var ys = ranked.map(function (r) { return r[key]; });
    var labels = ranked.map(function (r) { return r.label; });
    replaceChart(el, {
      width: chartWidth(el), height: 300,
      scales: { x: { time: false, range: function () { return [0.5, Math.max(xs.length, 1) + 0.5]; } } },
      series: [
        { label: "#", value: function (u, v) { return v === null ? "—" : labels[v - 1] || ""; } },
        { label: key, fill: "rgba(29,53,87,0.7)", stroke: "#1d3557", paths: uPlot.paths.bars({ size: [0.7, 60] }),
          points: { show: false },
          value: function (u, v) { return v === null ? "—" : key === "bytes" ? decimal(v, "B") : String(v); } }
      ],
      axes: [
        { values: function (u, splits) { return splits.map(function (s) { return Number.isInteger(s) ? String(s) : ""; }); } },
        { size: 70, values: function (u, splits) { return splits.map(function (v) { return key === "bytes" ? decimal(v, "B") : String(v); }); } }
      ]
    }, [xs, ys]);
    setField("start", data.start);
    setField("end", data.end);
    var table = document.getElementById("top-table");
    if (table) {
      var rank = 0;
      fillBody(table, data.rows.map(function (r) {
        rank += r.other ? 0 : 1;
        return [r.other ? "" : rank, r.label, r.volume, r.packets, r.flows, { links: r.links }];
      }));
    }
  }

  var DRAW = { bandwidth: drawBandwidth, top: drawTop };

  function load(el, url) {
    return getJson(url).then(function (data) {
      showError(el, "");
      DRAW[el.dataset.chart](el, data);
    }).catch(function (error) {
      showError(el, "The chart could not be loaded: " + error.message);
    });
  }

  function toggleCustom(form) {
    var select = form.querySelector('[name="period"]');
    if (!select) { return; }
    form.querySelectorAll(".custom-range").forEach(function (el) {
      el.classList.toggle("off", select.value !== "custom");
    });
  }

  function wire(form, chart) {
    var kindSelect = form.querySelector("[data-kind-select]");
    if (kindSelect) {
      kindSelect.addEventListener("change", function () {
        form.querySelector('[name="kind"]').value = kindSelect.value ? "address" : "account";
      });
    }
    toggleCustom(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var query = new URLSearchParams(new FormData(form)).toString();
      history.replaceState(null, "", "?" + query);
      load(chart, form.dataset.json + "?" + query);
    });
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () {
        toggleCustom(form);
        var period = form.querySelector('[name="period"]');
        if (select === period && period.value === "custom") { return; }
        form.requestSubmit();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(function (chart) {
      load(chart, chart.dataset.src);
      var form = document.querySelector("form[data-json]");
      if (form) { wire(form, chart); }
    });
  });
})();
