// Autosave (FORM-3): the answers so far are posted to the draft endpoint a moment after the
// patient stops typing or changes a choice, so leaving the page (or losing the signal) loses
// nothing; opening the same link again shows them. Files are uploaded on their own (uploads.js)
// and travel here as their references. Without this script the "暂存" button posts the form as
// a draft instead. Included inline in form.html; plain ES2017, no library.
(function () {
  "use strict";
  var form = document.getElementById("answers");
  var path = form && form.getAttribute("data-draft-path");
  var status = document.getElementById("draft-status");
  if (!path || !window.fetch || !window.URLSearchParams) return;
  form.classList.add("drafts-js");

  var WAIT_MS = 1200;
  var timer = null;
  var sending = false;
  var again = false;

  function say(text) { if (status) status.textContent = text; }

  function answers() {
    var body = new URLSearchParams();
    var fields = form.elements;
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (!field.name || field.disabled || field.type === "file" || field.type === "submit") continue;
      if ((field.type === "radio" || field.type === "checkbox") && !field.checked) continue;
      if (field.tagName === "SELECT" && field.multiple) {
        for (var j = 0; j < field.options.length; j++) {
          if (field.options[j].selected) body.append(field.name, field.options[j].value);
        }
        continue;
      }
      if (field.value !== "") body.append(field.name, field.value);
    }
    return body;
  }

  function clock(date) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function save() {
    timer = null;
    if (sending) { again = true; return; }
    sending = true;
    say("正在保存…");
    fetch(path, {
      method: "POST",
      body: answers(),
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (response) {
      if (response.ok) { say("已自动保存 " + clock(new Date())); return; }
      return response.json().then(function (refusal) { say(refusal.message || "自动保存失败"); });
    }).catch(function () {
      say("网络异常，答案暂未保存，恢复网络后会自动保存");
    }).then(function () {
      sending = false;
      if (again) { again = false; later(); }
    });
  }

  function later() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(save, WAIT_MS);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("submit", function () { if (timer) clearTimeout(timer); });
})();
