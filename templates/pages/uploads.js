// Photo and signature questions with the script: each chosen file (or confirmed signature) is
// sent at once to the upload endpoint, and the form keeps the reference it answers with, shown
// as a thumbnail through its signed link. The server checks everything again; without this
// script the file inputs post with the form and the server stores them itself.
// Included inline in form.html after form_logic.js and signature_pad.js; plain ES2017.
(function () {
  "use strict";
  var form = document.getElementById("answers");
  var base = form && form.getAttribute("data-upload-path");
  if (!base || !window.fetch || !window.FormData || !window.carepathPad) return;
  form.classList.add("uploads-js");

  var TEXT = {
    network: "网络异常，上传失败，请检查网络后重试",
    failed: "上传失败，请重试",
    empty: "请先在签名区域签名",
    busy: "正在上传…",
    done: "已上传",
    saving: "正在保存签名，请稍候…",
    noPreview: "已上传（无法预览）"
  };
  var pending = [];

  function changed() { form.dispatchEvent(new Event("change")); }

  function setUp(box) {
    var qid = box.getAttribute("data-upload");
    var maxFiles = Number(box.getAttribute("data-max-files")) || 1;
    var maxBytes = Number(box.getAttribute("data-max-bytes")) || 0;
    var thumbs = box.querySelector(".thumbs");
    var status = box.querySelector(".upload-status");
    var errorBox = box.querySelector(".upload-error");
    var kind = box.getAttribute("data-kind");
    var what = kind === "signature" ? "签名" : "照片";

    function showError(text) {
      errorBox.textContent = text || "";
      errorBox.hidden = !text;
    }

    function kept() { return thumbs.querySelectorAll("figure.thumb"); }

    function addThumb(ref, url) {
      if (thumbs.querySelector('figure[data-ref="' + ref + '"]')) return;
      // One file: the new one replaces the old.
      if (maxFiles === 1) Array.prototype.forEach.call(kept(), function (f) { f.remove(); });
      var figure = document.createElement("figure");
      figure.className = "thumb";
      figure.setAttribute("data-ref", ref);
      var img = document.createElement("img");
      img.alt = "已上传的" + what;
      img.addEventListener("error", function () {
        var note = document.createElement("span");
        note.className = "file-ok";
        note.textContent = TEXT.noPreview;
        img.replaceWith(note);
      });
      img.src = url;
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = qid;
      input.value = ref;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small remove js-only";
      remove.textContent = "删除";
      figure.appendChild(img);
      figure.appendChild(input);
      figure.appendChild(remove);
      thumbs.appendChild(figure);
      changed();
    }

    function upload(blob, name) {
      showError("");
      if (maxBytes && blob.size > maxBytes) {
        showError(box.getAttribute("data-too-large"));
        return Promise.resolve(false);
      }
      if (maxFiles > 1 && kept().length >= maxFiles) {
        showError("最多上传 " + maxFiles + " 个文件");
        return Promise.resolve(false);
      }
      var body = new FormData();
      body.append("file", blob, name);
      status.textContent = TEXT.busy;
      box.setAttribute("aria-busy", "true");
      var sent = fetch(base + "/" + encodeURIComponent(qid), {
        method: "POST", body: body, credentials: "same-origin"
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.ok && data.reference) {
            addThumb(data.reference, data.url);
            status.textContent = TEXT.done;
            return true;
          }
          status.textContent = "";
          showError(data.message || TEXT.failed);
          return false;
        });
      }, function () {
        status.textContent = "";
        showError(TEXT.network);
        return false;
      }).then(function (ok) {
        box.removeAttribute("aria-busy");
        pending.splice(pending.indexOf(sent), 1);
        return ok;
      });
      pending.push(sent);
      return sent;
    }

    thumbs.addEventListener("click", function (event) {
      var button = event.target.closest("button.remove");
      if (!button) return;
      button.closest("figure").remove();
      status.textContent = "";
      changed();
    });

    Array.prototype.forEach.call(box.querySelectorAll('input[type="file"]'), function (input) {
      input.addEventListener("change", function () {
        var files = Array.prototype.slice.call(input.files || []);
        // Sent one after another, so a slow phone network is not asked for all at once.
        files.reduce(function (chain, file) {
          return chain.then(function () { return upload(file, file.name); });
        }, Promise.resolve()).then(function () {
          // Sent already: not posted again with the form.
          input.value = "";
        });
      });
    });

    var canvas = box.querySelector("canvas.pad-canvas");
    if (canvas) setUpPad(box, canvas, upload, showError, function () {
      Array.prototype.forEach.call(kept(), function (f) { f.remove(); });
      status.textContent = "";
      changed();
    });
  }

  // The pad (signature_pad.js) is confirmed with its own button, or on submitting the form.
  function setUpPad(box, canvas, upload, showError, cleared) {
    var pad = window.carepathPad(canvas);
    var unsaved = false;
    canvas.addEventListener("pointerdown", function () { unsaved = true; });

    function save() {
      if (!pad.drawn()) {
        showError(TEXT.empty);
        return Promise.resolve(false);
      }
      return pad.png().then(function (blob) {
        if (!blob) { showError(TEXT.failed); return false; }
        return upload(blob, "signature.png").then(function (ok) {
          if (ok) unsaved = false;
          return ok;
        });
      });
    }

    box.querySelector("button.clear").addEventListener("click", function () {
      pad.clear();
      unsaved = false;
      showError("");
      cleared();
    });
    box.querySelector("button.save").addEventListener("click", save);
    box.unsavedSignature = function () { return unsaved; };
    box.saveSignature = save;
  }

  var boxes = form.querySelectorAll("fieldset[data-upload]");
  Array.prototype.forEach.call(boxes, setUp);

  // A signature drawn but not confirmed, or a file still on its way, is finished first.
  var submitting = false;
  form.addEventListener("submit", function (event) {
    if (submitting) return;
    var unsaved = Array.prototype.filter.call(boxes, function (box) {
      return box.unsavedSignature && box.unsavedSignature();
    });
    var waits = unsaved.map(function (box) { return box.saveSignature(); }).concat(pending);
    if (!waits.length) return;
    event.preventDefault();
    var button = form.querySelector('button[type="submit"]');
    if (button) { button.disabled = true; button.textContent = TEXT.saving; }
    Promise.all(waits).then(function (results) {
      if (button) { button.disabled = false; button.textContent = "提交"; }
      if (results.every(function (ok) { return ok !== false; })) {
        submitting = true;
        form.submit();
      }
    });
  });
})();
