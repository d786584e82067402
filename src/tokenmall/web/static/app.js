// tokenmall pages: charts from JSON data islands, confirmations, no double submits, check-all.
// No inline script anywhere (the Content-Security-Policy forbids it), so this is the one place.
"use strict";

function drawCharts(root) {
  if (typeof echarts === "undefined") return;
  root.querySelectorAll("[data-chart]").forEach(function (element) {
    var source = document.getElementById(element.dataset.chart);
    if (!source || element.dataset.drawn) return;
    element.dataset.drawn = "1";
    var option = JSON.parse(source.textContent);
    var chart = echarts.init(element, null, { renderer: "canvas" });
    chart.setOption(option);
    window.addEventListener("resize", function () { chart.resize(); });
  });
}

document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });

// A form with data-confirm asks first; any form's submit buttons are disabled once it is sent
// (its one-time key already makes a resend harmless: this only saves a round trip).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = true; });
  }, 0);
});

// <input type=checkbox data-check-all="name"> ticks every checkbox of that name.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.dataset || !box.dataset.checkAll) return;
  document.querySelectorAll("input[type=checkbox][name='" + box.dataset.checkAll + "']")
    .forEach(function (other) { other.checked = box.checked; });
});
