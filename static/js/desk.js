/* The desk's small amount of behaviour: connection state, theme, alarms, keyboard shortcuts, chart. */
(function () {
  "use strict";
  var conn = document.getElementById("connection-state");
  var staleSince = null;
  if (conn && !document.body.hasAttribute("ws-connect")) conn.hidden = true;   // a page without a live socket

  function setConnection(state) {
    if (!conn) return;
    conn.dataset.state = state;
    if (state === "live") { staleSince = null; conn.textContent = "live"; }
    else if (state === "reconnecting") {
      staleSince = staleSince || new Date();
      conn.textContent = "reconnecting · stale since " + staleSince.toLocaleTimeString();
    }
  }
  document.body.addEventListener("htmx:wsOpen", function () { setConnection("live"); });
  document.body.addEventListener("htmx:wsClose", function () { setConnection("reconnecting"); });
  document.body.addEventListener("htmx:wsError", function () { setConnection("reconnecting"); });

  // theme
  var toggle = document.getElementById("theme-toggle");
  if (toggle) toggle.addEventListener("click", function () {
    var next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("desk-theme", next);
  });

  // alarms: any OPEN alert flashes the banner and beeps every 5 s until it is acknowledged. A browser keeps a page
  // silent until the person has clicked or typed in it: until then the banner offers to turn the sound on (any click
  // or key on the page does), so an alarm on a page nobody touched is not silent without anyone knowing.
  var alarm = document.getElementById("alarm");
  var soundOn = document.getElementById("sound-on");
  var audio = null, heard = false;
  function sound() {
    if (!audio) {
      try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { return null; }
    }
    return audio;
  }
  function hearing() {
    heard = true;
    var a = sound();
    if (a && a.state === "suspended") a.resume();
    if (soundOn) soundOn.hidden = true;
  }
  document.addEventListener("pointerdown", hearing, true);
  document.addEventListener("keydown", hearing, true);
  function beep() {
    var a = heard ? sound() : null;
    if (!a || a.state !== "running") return;
    try {
      var osc = a.createOscillator(), gain = a.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(a.destination);
      osc.start(); osc.stop(a.currentTime + 0.25);
    } catch (e) { /* no audio device */ }
  }
  // the nav's alert count follows the pushed alerts bar: red while one is unacknowledged, grey once all are
  var alertCount = document.getElementById("alert-count");
  function showCount() {
    var bar = document.getElementById("alerts-bar");
    if (!alertCount || !bar) return;
    var live = bar.querySelectorAll(".alert").length;
    var open = bar.querySelectorAll('.alert[data-status="OPEN"]').length;
    alertCount.textContent = live;
    alertCount.hidden = live === 0;
    alertCount.dataset.open = open;
    alertCount.classList.toggle("quiet", open === 0);
    alertCount.title = live + " live alert" + (live === 1 ? "" : "s") + ", " + open + " unacknowledged";
  }
  function checkAlarm() {
    var open = document.querySelectorAll('.alert[data-status="OPEN"]').length;
    if (alarm) alarm.hidden = open === 0;
    if (soundOn && !heard) soundOn.hidden = open === 0;
    document.body.classList.toggle("alarming", open > 0);
    showCount();
    return open;
  }
  setInterval(function () { if (checkAlarm() > 0) beep(); }, 5000);
  document.body.addEventListener("htmx:oobAfterSwap", checkAlarm);
  document.body.addEventListener("htmx:afterSwap", checkAlarm);
  checkAlarm();

  // Ctrl+Shift+K: the kill switch's one confirm, from any page and any focus (base.html's dialog posts it and
  // shows the receipt in place; without the risk role the dialog says so)
  var killDialog = document.getElementById("kill-dialog");
  function openKillDialog() {
    if (!killDialog || killDialog.open) return;
    var form = document.getElementById("kill-dialog-form"), result = document.getElementById("kill-dialog-result");
    var done = document.getElementById("kill-dialog-done");
    if (form) { form.hidden = false; form.reset(); }
    if (result) result.innerHTML = "";
    if (done) done.hidden = true;
    killDialog.showModal();
    var confirm = document.getElementById("kill-dialog-confirm");
    if (confirm) confirm.focus();
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey && event.shiftKey && (event.key === "K" || event.key === "k")) {
      event.preventDefault();
      openKillDialog();
    }
  });
  if (killDialog) {
    killDialog.addEventListener("click", function (e) {
      if (e.target.closest("[data-close-dialog]")) killDialog.close();
    });
    // the receipt ends the dialog's work; a refusal (the server's "not run", or any error answer, drawn here by
    // refusals.js) leaves the form and its Confirm for another try
    document.body.addEventListener("htmx:afterSwap", function (e) {
      if (!e.detail.target || e.detail.target.id !== "kill-dialog-result") return;
      if (!e.detail.target.querySelector("#kill-receipt")) return;
      document.getElementById("kill-dialog-form").hidden = true;
      document.getElementById("kill-dialog-done").hidden = false;
      document.querySelector("#kill-dialog-done button").focus();
    });
  }

  // blotter & risk: the blotter's filters are a style sheet over the rows' data-symbol / data-side /
  // data-status, so rows the socket pushes later (whole tbodies swapped out of band) are filtered as they land
  var filters = document.getElementById("blotter-filters");
  if (filters) {
    var sheet = document.createElement("style");
    sheet.id = "blotter-filter-style";
    document.head.appendChild(sheet);
    var WORKING = ["PENDING", "OPEN", "PARTIALLY_FILLED", "PENDING_CANCEL"];
    var applyFilters = function () {
      var hide = [], row = ".blotter-card tr";
      var symbol = filters.elements.symbol.value.trim(), side = filters.elements.side.value,
          status = filters.elements.status.value;
      if (symbol) hide.push(row + '[data-symbol]:not([data-symbol^="' + CSS.escape(symbol) + '" i])');
      if (side) hide.push(row + '[data-side]:not([data-side="' + CSS.escape(side) + '"])');
      if (status === "WORKING") {
        hide.push(row + "[data-status]" + WORKING.map(function (s) { return ':not([data-status="' + s + '"])'; }).join(""));
      } else if (status) hide.push(row + '[data-status]:not([data-status="' + CSS.escape(status) + '"])');
      sheet.textContent = hide.length ? hide.join(",\n") + " { display: none; }" : "";
      filters.dataset.active = hide.length ? "true" : "false";
    };
    filters.addEventListener("input", applyFilters);
    filters.addEventListener("change", applyFilters);
    filters.addEventListener("reset", function () { setTimeout(applyFilters, 0); });
    applyFilters();
  }
  // a modify form someone has open (and what they typed in it) stays open when the socket redraws its row
  var openForms = {};
  document.body.addEventListener("htmx:oobBeforeSwap", function (e) {
    var target = e.detail.target;
    if (!target || !target.querySelectorAll) return;
    var found = target.matches("details.modify[open]") ? [target] : [];
    target.querySelectorAll("details.modify[open]").forEach(function (d) { found.push(d); });
    found.forEach(function (details) {
      var row = details.closest("tr[id]");
      if (!row) return;
      var values = {};
      details.querySelectorAll("input[name]").forEach(function (input) { values[input.name] = input.value; });
      var focused = details.contains(document.activeElement) ? document.activeElement.name : null;
      openForms[row.id] = {values: values, focused: focused};
    });
  });
  document.body.addEventListener("htmx:oobAfterSwap", function () {
    Object.keys(openForms).forEach(function (rowId) {
      var kept = openForms[rowId], details = document.querySelector("#" + CSS.escape(rowId) + " details.modify");
      delete openForms[rowId];
      if (!details) return;
      details.open = true;
      details.querySelectorAll("input[name]").forEach(function (input) {
        if (input.name in kept.values) input.value = kept.values[input.name];
        if (input.name === kept.focused) input.focus();
      });
    });
  });

  // an id cell copies its full id (shown whole in its title) on a click
  document.body.addEventListener("click", function (e) {
    var cell = e.target.closest && e.target.closest("[data-copy]");
    if (!cell || !navigator.clipboard) return;
    navigator.clipboard.writeText(cell.dataset.copy).then(function () {
      cell.classList.add("copied"); setTimeout(function () { cell.classList.remove("copied"); }, 800);
    }, function () { /* no clipboard permission: the title still shows it whole */ });
  });

  // ticket: show only the price fields the order type uses
  function syncTicket() {
    var type = document.getElementById("ticket-type");
    if (!type) return;
    document.querySelectorAll("#ticket-form [data-for]").forEach(function (label) {
      var show = label.dataset.for.split(" ").indexOf(type.value) >= 0;
      label.hidden = !show;
      label.style.display = show ? "" : "none";   // the stylesheet's label { display: flex } beats [hidden]
      if (!show) { var input = label.querySelector("input, select"); if (input) input.value = ""; }
    });
  }
  document.body.addEventListener("change", function (e) { if (e.target.id === "ticket-type") syncTicket(); });
  document.body.addEventListener("htmx:afterSwap", syncTicket);
  syncTicket();

  // chart
  var holder = document.getElementById("chart");
  var chart = null, series = null, lastBar = null, drawn = [], linePrices = [];
  // keep the entry, stop and target lines on screen even when the bars never reached them
  function withLines(original) {
    var scale = original();
    if (!scale || !linePrices.length) return scale;
    return {priceRange: {minValue: Math.min.apply(null, [scale.priceRange.minValue].concat(linePrices)),
                         maxValue: Math.max.apply(null, [scale.priceRange.maxValue].concat(linePrices))},
            margins: scale.margins};
  }
  // the chart takes the page's theme (its text, grid and scale borders from the style sheet's colours), and
  // follows it live when the theme is toggled
  function chartColours() {
    var css = getComputedStyle(document.documentElement);
    var colour = function (name) { return css.getPropertyValue(name).trim(); };
    return {layout: {background: {color: "transparent"}, textColor: colour("--fg")},
            grid: {vertLines: {color: colour("--line")}, horzLines: {color: colour("--line")}},
            rightPriceScale: {borderColor: colour("--line")}, timeScale: {borderColor: colour("--line")}};
  }
  function paintChart() {
    if (!chart) return;
    chart.applyOptions(chartColours());
    holder.dataset.theme = document.documentElement.dataset.theme;
  }
  new MutationObserver(paintChart).observe(document.documentElement, {attributes: true, attributeFilter: ["data-theme"]});
  // what the chart's lines and fill markers are drawn from: a pushed blotter that changes neither (the socket sends
  // every section when it connects) does not fetch the chart again
  function drawnFrom() {
    return ["fills-body", "working-body"].map(function (id) {
      var body = document.getElementById(id); return body ? body.textContent : "";
    }).join("|");
  }
  var loadedFrom = null, loading = null;
  function loadChart(symbol, again) {
    if (!holder || !window.LightweightCharts) return;
    if (!again && (loading === symbol || (!loading && holder.dataset.symbol === symbol))) return;   // it has it
    loading = symbol;
    loadedFrom = drawnFrom();
    // an expired session answers with the login page and a refused fetch with an error: neither is chart data, and
    // the refusal itself is said by refusals.js
    fetch(holder.dataset.url + "&symbol=" + encodeURIComponent(symbol))
      .then(function (r) {
        var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        return r.ok && json ? r.json() : {error: r.status};
      }).catch(function () { return {error: "network"}; })
      .then(function (data) {
        if (loading === symbol) loading = null;
        if (!data || data.error || !data.bars) return;
        if (!chart) {
          chart = LightweightCharts.createChart(holder, {autoSize: true, timeScale: {timeVisible: true, secondsVisible: false},
            // prices on the scale and the crosshair as the blotter shows them: grouped, at least the cents
            localization: {priceFormatter: function (p) {
              return p.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 8});
            }}});
          series = chart.addCandlestickSeries({autoscaleInfoProvider: withLines});
          holder.chart = chart;               // its options, for the browser tests and the console
          paintChart();
        }
        var bars = data.bars.map(function (b) { return {time: b.time, open: +b.open, high: +b.high, low: +b.low, close: +b.close}; });
        series.setData(bars);
        lastBar = bars[bars.length - 1] || null;
        drawn.forEach(function (l) { series.removePriceLine(l); });
        linePrices = data.lines.map(function (l) { return +l.price; });
        drawn = data.lines.map(function (l) {
          return series.createPriceLine({price: +l.price, title: l.label, lineStyle: 2,
            color: l.label === "stop" ? "#dc2626" : (l.label === "target" ? "#16a34a" : "#2563eb")});
        });
        series.setMarkers(data.fills.slice().reverse().map(function (f) {
          var t = f.time - (f.time % 60);
          return {time: t, position: f.side === "BUY" ? "belowBar" : "aboveBar", color: f.side === "BUY" ? "#16a34a" : "#dc2626",
                  shape: f.side === "BUY" ? "arrowUp" : "arrowDown", text: f.side + " " + f.quantity};
        }).filter(function (m) { return lastBar && m.time <= lastBar.time; }));
        var label = document.getElementById("chart-symbol"); if (label) label.textContent = symbol;
        holder.dataset.symbol = symbol;
      });
  }
  document.body.addEventListener("htmx:oobAfterSwap", function (e) {
    var tick = e.detail.target;
    if (!tick || tick.id !== "chart-tick" || !series || tick.dataset.symbol !== (holder && holder.dataset.symbol)) return;
    var price = +tick.dataset.price, minute = +tick.dataset.time - (+tick.dataset.time % 60);
    // a venue's bars may run ahead of this desk's clock: a tick older than the last bar cannot be drawn
    if (lastBar && minute < lastBar.time) return;
    if (lastBar && minute === lastBar.time) {
      lastBar = {time: minute, open: lastBar.open, high: Math.max(lastBar.high, price), low: Math.min(lastBar.low, price), close: price};
    } else { lastBar = {time: minute, open: price, high: price, low: price, close: price}; }
    series.update(lastBar);
  });
  var symbolSelect = document.getElementById("ticket-symbol");
  if (holder && symbolSelect) {
    loadChart(symbolSelect.value);
    document.body.addEventListener("change", function (e) { if (e.target.id === "ticket-symbol") loadChart(e.target.value); });
    document.body.addEventListener("htmx:wsAfterMessage", function (e) {
      // redraw the lines and fill markers when fills or working orders (exit legs) change; positions are
      // also redrawn every few seconds just to mark them to market, which changes neither
      var message = e.detail.message;
      var pushed = typeof message === "string" &&
        (message.indexOf('id="fills-body"') >= 0 || message.indexOf('id="working-body"') >= 0);
      if (pushed && holder.dataset.reload !== "0" && drawnFrom() !== loadedFrom) {
        holder.dataset.reload = "0";
        setTimeout(function () { holder.dataset.reload = "1"; loadChart(holder.dataset.symbol || symbolSelect.value, true); }, 1500);
      }
    });
  }
})();
