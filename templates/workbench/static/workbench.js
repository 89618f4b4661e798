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

  // Lists that change under the user (the queue, alerts) fetch themselves again every
  // data-live seconds while the tab is shown and nobody is typing in them; the fresh page's
  // [data-live] part replaces this one's. The request says it is a refresh, so an unattended
  // screen still signs out when the session's idle time runs out.
  function busy(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && active.matches("input, textarea, select")) return true;
    return Array.prototype.some.call(live.querySelectorAll("textarea, input[type=text]"), function (el) {
      return el.value.trim() !== "";
    });
  }
  window.carepathRefresh = function () {
    var live = document.querySelector("[data-live]");
    if (!live || busy(live)) return Promise.resolve(false);
    return fetch(window.location.href, { headers: { "X-Carepath-Poll": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok && !response.redirected ? response.text() : null; })
      .then(function (html) {
        var current = document.querySelector("[data-live]");
        var fresh = html && new DOMParser().parseFromString(html, "text/html").querySelector("[data-live]");
        if (!fresh || !current || busy(current)) return false;
        current.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
        setUp(fresh);
        return true;
      })
      .catch(function () { return false; });
  };
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelector("[data-live]");
    var seconds = live && parseInt(live.getAttribute("data-live"), 10);
    if (!seconds) return;
    window.setInterval(function () { if (!document.hidden) window.carepathRefresh(); }, seconds * 1000);
  });
  window.addEventListener("resize", function () {
    if (!window.echarts) return;
    Array.prototype.forEach.call(document.querySelectorAll("[data-drawn]"), function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) chart.resize();
    });
  });
})();
