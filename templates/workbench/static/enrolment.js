// Enrolling with informed consent: only the chosen way's part is shown, and the signature the
// patient draws on the tablet goes with the form as its file. Without this script both parts
// show and a picture of the signature or of the signed paper form is uploaded instead.
(function () {
  "use strict";
  var form = document.getElementById("enrol");
  var canvas = form && form.querySelector("canvas.pad-canvas");
  if (!canvas || !window.carepathPad || !window.DataTransfer) return;
  var input = form.querySelector('input[name="consent_signature"]');
  var parts = form.querySelectorAll(".consent-part");
  form.classList.add("signing");
  var pad = window.carepathPad(canvas);

  function chosen() {
    var checked = form.querySelector('input[name="consent_method"]:checked');
    return checked ? checked.value : "";
  }
  function show() {
    Array.prototype.forEach.call(parts, function (part) {
      var hidden = part.getAttribute("data-method") !== chosen();
      // The pad takes its size when it first shows (a hidden canvas has none).
      if (part.hidden && !hidden && part.contains(canvas) && !pad.drawn()) {
        part.hidden = false;
        pad.clear();
      }
      part.hidden = hidden;
    });
  }
  Array.prototype.forEach.call(form.querySelectorAll('input[name="consent_method"]'), function (radio) {
    radio.addEventListener("change", show);
  });
  form.querySelector("button.clear").addEventListener("click", function () { pad.clear(); });
  show();

  var sending = false;
  form.addEventListener("submit", function (event) {
    if (sending || chosen() !== "e_signature" || !pad.drawn()) return;
    event.preventDefault();
    pad.png().then(function (blob) {
      var files = new DataTransfer();
      files.items.add(new File([blob], "consent-signature.png", { type: "image/png" }));
      input.files = files.files;
      sending = true;
      form.submit();
    });
  });
})();
