// The cockpit's charts (ECharts, vendored) and its live refresh. Each chart's data is fetched from its
// data-chart URL (the page's period and filters in it); a click on a bar, a point or a slice opens the orders
// behind it. Every 2 s the page asks whether anything a KPI counts has changed (/console/cockpit/stamp) and,
// when it has, fetches the cards and the charts again — no reload.
(function () {
  "use strict";
  var charts = [];
  var palette = ["#0b5cad", "#2f9e44", "#e8590c", "#7048e8", "#c2255c", "#1098ad", "#f08c00", "#5c940d"];

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  // An axis label in the KPI's unit (the tooltips show the server's own wording of each figure).
  function axisLabel(unit) {
    return function (v) {
      if (unit === "seconds") {
        if (v >= 86400) { return (v / 86400).toFixed(1) + " d"; }
        if (v >= 3600) { return (v / 3600).toFixed(1) + " h"; }
        if (v >= 60) { return (v / 60).toFixed(0) + " min"; }
        return v.toFixed(v < 1 && v > 0 ? 2 : 0) + " s";
      }
      if (unit === "ratio") { return (v * 100).toFixed(0) + " %"; }
      if (unit === "hours") {
        if (v === 0 || v >= 1) { return v.toFixed(v >= 10 || v === 0 ? 0 : 1) + (v === 0 ? "" : " h"); }
        return v * 60 >= 1 ? (v * 60).toFixed(0) + " min" : (v * 3600).toFixed(v * 3600 < 10 ? 1 : 0) + " s";
      }
      return Number(v).toLocaleString();
    };
  }

  function option(kind, data) {
    var keys = data.rows.map(function (r) { return r.key; });
    var values = data.rows.map(function (r) { return r.value; });
    var tooltip = {
      trigger: kind === "pie" ? "item" : "axis",
      formatter: function (p) {
        var item = Array.isArray(p) ? p[0] : p;
        var row = data.rows[item.dataIndex];
        return row ? row.key + ": " + row.shown + (row.share != null ? " (" + (row.share * 100).toFixed(1) + " %)" : "") : "";
      }
    };
    if (kind === "pie") {
      return {
        color: palette, tooltip: tooltip, animation: false,
        series: [{ type: "pie", radius: ["35%", "70%"], data: data.rows.map(function (r) {
          return { name: r.key, value: r.value === null ? 0 : r.value };
        }), label: { formatter: "{b}" } }]
      };
    }
    return {
      color: palette, tooltip: tooltip, animation: false,
      grid: { left: 60, right: 16, top: 16, bottom: 56 },
      xAxis: { type: "category", data: keys, axisLabel: { rotate: keys.length > 6 ? 30 : 0, interval: keys.length > 20 ? "auto" : 0 } },
      yAxis: { type: "value", axisLabel: { formatter: axisLabel(data.unit) }, max: data.unit === "ratio" ? 1 : null },
      series: [{ type: kind === "line" ? "line" : "bar", data: values, connectNulls: false }]
    };
  }

  function draw(entry) {
    return getJSON(entry.url).then(function (data) {
      entry.data = data;
      entry.el.setAttribute("data-rows", String(data.rows.length));
      if (!data.rows.length) {  // still a chart (its canvas), saying there is nothing to count
        entry.el.setAttribute("data-empty", "1");
        entry.chart.setOption({ title: { text: entry.el.getAttribute("data-empty-text") || "–", left: "center",
          top: "middle", textStyle: { color: "#4a5563", fontSize: 14, fontWeight: "normal" } } }, true);
        return;
      }
      entry.el.removeAttribute("data-empty");
      entry.chart.setOption(option(entry.kind, data), true);
    }).catch(function (error) { entry.el.setAttribute("data-error", String(error)); });
  }

  function setUp() {
    if (typeof echarts === "undefined") { return; }
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var entry = { el: el, url: el.getAttribute("data-chart"), kind: el.getAttribute("data-kind"), data: null };
      entry.chart = echarts.init(el, null, { renderer: "canvas" });
      entry.chart.on("click", function (params) {
        var row = entry.data && entry.data.rows[params.dataIndex];
        if (row && row.orders) { window.location.href = row.orders; }
      });
      charts.push(entry);
      draw(entry);
    });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.chart.resize(); }); });
  }

  function refreshCards(url) {
    return getJSON(url).then(function (data) {
      Object.keys(data.cards).forEach(function (id) {
        var card = document.querySelector('.kpi-card[data-kpi="' + id + '"]');
        if (!card) { return; }
        var c = data.cards[id];
        card.querySelector("[data-value]").textContent = c.shown;
        var trend = card.querySelector("[data-trend]");
        trend.textContent = c.arrow ? c.arrow + " " + (trend.getAttribute("data-was") || "") + c.previous_shown : "";
        trend.className = "kpi-trend " + c.tone;
      });
    });
  }

  function live() {
    var badge = document.getElementById("live");
    if (!badge) { return; }
    var stampUrl = badge.getAttribute("data-stamp-url");
    var cardsUrl = badge.getAttribute("data-cards-url");
    var last = null;
    var busy = false;
    var fetched = Date.now();
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      getJSON(stampUrl).then(function (data) {
        // Also every 30 s: on PostgreSQL a change committed after a later-numbered one does not move the stamp.
        var due = Date.now() - fetched > 30000;
        if (last !== null && (data.stamp !== last || due)) {
          fetched = Date.now();
          return Promise.all([refreshCards(cardsUrl)].concat(charts.map(draw))).then(function () {
            last = data.stamp;
            badge.setAttribute("data-updated", new Date().toISOString());
          });
        }
        last = data.stamp;
      }).catch(function () { badge.classList.add("off"); }).then(function () { busy = false; });
    }
    tick();
    window.setInterval(tick, 2000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-trend]").forEach(function (el) {
      var was = el.closest(".kpi-card").getAttribute("data-was-word");
      if (was) { el.setAttribute("data-was", was + " "); }
    });
    setUp();
    live();
  });
})();
