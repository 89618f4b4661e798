// The workbench's own script: small, optional (every form also works as a plain post).
// htmx sends the CSRF token from <body hx-headers>; this adds the charts' and the countdowns'
// set-up, run on load and again after htmx swaps a fragment in.
(function () {
  "use strict";
  function setUp(root) {
    Array.prototype.forEach.call(root.querySelectorAll("[data-chart]"), function (el) {
      if (!window.echarts || el.getAttribute("data-drawn")) return;
      var option = JSON.parse(el.getAttribute("data-chart"));
      window.echarts.init(el).setOption(option);
      el.setAttribute("data-drawn", "1");
    });
  }
  // Review deadlines: counted down on this screen's clock, corrected by the server's "now" the
  // page was rendered with (the label it printed), so a skewed PC clock does not mislead.
  function tick() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-deadline]"), function (el) {
      var left = Math.round((Date.parse(el.getAttribute("data-deadline")) - Date.now() - skew) / 1000);
      if (left > 0) {
        el.textContent = "剩余 " + Math.floor(left / 60) + ":" + ("0" + (left % 60)).slice(-2);
      } else {
        el.textContent = "已到时，系统审方中";
        el.className = "tag danger countdown";
      }
    });
  }
  var skew = 0;
  document.addEventListener("DOMContentLoaded", function () {
    var served = document.body.getAttribute("data-now");
    if (served) skew = Date.now() - Date.parse(served);
    setUp(document);
    tick();
    window.setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", function (event) { setUp(event.target); });
  window.addEventListener("resize", function () {
    if (!window.echarts) return;
    Array.prototype.forEach.call(document.querySelectorAll("[data-drawn]"), function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) chart.resize();
    });
  });
})();
