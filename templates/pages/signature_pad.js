// A signature drawn with a finger or the mouse on a canvas, kept as a PNG on a white ground.
// window.carepathPad(canvas) -> { drawn(), clear(), png() -> Promise<Blob|null> }.
// Shared by form signature questions (uploads.js) and the home-nursing page; plain ES2017.
(function () {
  "use strict";
  window.carepathPad = function (canvas) {
    var ctx = canvas.getContext("2d");
    var drawn = false, last = null;

    function clear() {
      var ratio = window.devicePixelRatio || 1;
      var width = canvas.clientWidth || 340, height = canvas.clientHeight || 160;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, width, height);
      ctx.lineWidth = 2.5;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = "#111";
      drawn = false;
    }

    function point(event) {
      var rect = canvas.getBoundingClientRect();
      return { x: event.clientX - rect.left, y: event.clientY - rect.top };
    }

    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      try { canvas.setPointerCapture(event.pointerId); } catch (e) { /* drawn without capture */ }
      last = point(event);
      ctx.beginPath();
      ctx.arc(last.x, last.y, ctx.lineWidth / 2, 0, Math.PI * 2);
      ctx.fillStyle = "#111";
      ctx.fill();
      drawn = true;
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!last) return;
      event.preventDefault();
      var next = point(event);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(next.x, next.y);
      ctx.stroke();
      last = next;
    });
    function end() { last = null; }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", end);
    clear();

    return {
      drawn: function () { return drawn; },
      clear: clear,
      png: function () {
        return new Promise(function (resolve) {
          canvas.toBlob(function (blob) { resolve(blob); }, "image/png");
        });
      }
    };
  };
})();
