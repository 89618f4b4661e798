// Shows and hides questions as the patient answers, the way the server's check_answers decides
// them: a question whose show_if does not hold is hidden, and after an option that ends the form
// or an end_if that holds every later question is hidden. Conditions arrive as the expression
// trees of pathways.expressions.expression_tree; this only walks them, with Python's meaning.
// Included inline in form.html (the pages have no static files); plain ES2017, no library.
// Without this script every question is shown and the server discards what it does not ask.
(function () {
  "use strict";
  var source = document.getElementById("form-logic");
  var form = document.getElementById("answers");
  if (!source || !form) return;
  var logic = JSON.parse(source.textContent);
  document.documentElement.classList.add("js");

  // ---- values with Python's meaning ---------------------------------------------------------

  function isNum(v) { return typeof v === "number" || typeof v === "boolean"; }

  function truthy(v) {
    if (v === null || v === undefined || v === false || v === "") return false;
    if (typeof v === "number") return v !== 0;
    if (Array.isArray(v)) return v.length > 0;
    return true;
  }

  function eq(a, b) {
    if (a === null || b === null) return a === b;
    if (isNum(a) && isNum(b)) return Number(a) === Number(b);
    if (Array.isArray(a) && Array.isArray(b)) {
      return a.length === b.length && a.every(function (x, i) { return eq(x, b[i]); });
    }
    return typeof a === typeof b && a === b;
  }

  // Python raises on ordering different kinds (3 < "a"); the condition then does not hold.
  function order(a, b) {
    if (isNum(a) && isNum(b)) return Number(a) - Number(b);
    if (typeof a === "string" && typeof b === "string") return a < b ? -1 : (a > b ? 1 : 0);
    if (Array.isArray(a) && Array.isArray(b)) {
      for (var i = 0; i < Math.min(a.length, b.length); i++) {
        if (!eq(a[i], b[i])) return order(a[i], b[i]);
      }
      return a.length - b.length;
    }
    throw new TypeError("not comparable");
  }

  function contains(container, item) {
    if (typeof container === "string") {
      if (typeof item !== "string") throw new TypeError("in <string> needs a string");
      return container.indexOf(item) >= 0;
    }
    if (!Array.isArray(container)) container = [container];
    return container.some(function (x) { return eq(item, x); });
  }

  var COMPARE = {
    "==": function (a, b) { return eq(a, b); },
    "!=": function (a, b) { return !eq(a, b); },
    "<": function (a, b) { return order(a, b) < 0; },
    "<=": function (a, b) { return order(a, b) <= 0; },
    ">": function (a, b) { return order(a, b) > 0; },
    ">=": function (a, b) { return order(a, b) >= 0; },
    "in": function (a, b) { return contains(b, a); },
    "not in": function (a, b) { return !contains(b, a); }
  };

  function arithmetic(op, a, b) {
    if (op === "+" && typeof a === "string" && typeof b === "string") return a + b;
    if (op === "+" && Array.isArray(a) && Array.isArray(b)) return a.concat(b);
    if (!isNum(a) || !isNum(b)) throw new TypeError("not numbers");
    a = Number(a); b = Number(b);
    if (op === "+") return a + b;
    if (op === "-") return a - b;
    if (op === "*") return a * b;
    if (b === 0) throw new RangeError("division by zero");
    return a / b;
  }

  function numbers(v) { return isNum(v) && typeof v !== "boolean"; }

  function sum() {
    var total = 0;
    for (var i = 0; i < arguments.length; i++) {
      var v = arguments[i];
      if (Array.isArray(v)) total += sum.apply(null, v);
      else if (numbers(v)) total += v;
    }
    return total;
  }

  function extreme(pick) {
    return function () {
      var present = Array.prototype.filter.call(arguments, function (x) { return x !== null; });
      if (!present.length) return null;
      return present.reduce(function (best, x) { return pick(order(x, best)) ? x : best; });
    };
  }

  // Python rounds halves to even.
  function pyRound(v, digits) {
    if (v === null) return null;
    var scale = Math.pow(10, digits || 0);
    var scaled = v * scale;
    var rounded = Math.round(scaled);
    if (Math.abs(scaled % 1) === 0.5) rounded = 2 * Math.round(scaled / 2);
    return rounded / scale;
  }

  function mean() {
    var found = [];
    (function collect(list) {
      for (var i = 0; i < list.length; i++) {
        if (Array.isArray(list[i])) collect(list[i]);
        else if (numbers(list[i])) found.push(list[i]);
      }
    })(arguments);
    if (!found.length) return null;
    return found.reduce(function (a, b) { return a + b; }, 0) / found.length;
  }

  var FUNCTIONS = {
    sum: sum,
    mean: mean,
    count: function () {
      return Array.prototype.filter.call(arguments, function (v) {
        return !(v === null || v === false || v === "" || (numbers(v) && v === 0));
      }).length;
    },
    min: extreme(function (c) { return c < 0; }),
    max: extreme(function (c) { return c > 0; }),
    abs: function (v) { return v === null ? null : Math.abs(v); },
    round: pyRound,
    len: function (v) {
      if (v === null) return 0;
      if (typeof v === "string" || Array.isArray(v)) return v.length;
      throw new TypeError("no length");
    },
    band: function (v) {
      var thresholds = Array.prototype.slice.call(arguments, 1);
      if (!numbers(v) || !thresholds.length || !thresholds.every(numbers)) return null;
      for (var i = 1; i < thresholds.length; i++) if (thresholds[i - 1] > thresholds[i]) return null;
      return thresholds.filter(function (t) { return v >= t; }).length;
    }
  };

  function walk(node, values) {
    switch (node.k) {
      case "const": return "num" in node ? Number(node.num) : node.v;
      case "name": return Object.prototype.hasOwnProperty.call(values, node.n) ? values[node.n] : null;
      case "list": return node.items.map(function (i) { return walk(i, values); });
      case "and": return node.args.every(function (a) { return truthy(walk(a, values)); });
      case "or": return node.args.some(function (a) { return truthy(walk(a, values)); });
      case "unary": {
        var operand = walk(node.arg, values);
        if (node.op === "not") return !truthy(operand);
        if (operand === null) return null;
        if (!isNum(operand)) throw new TypeError("not a number");
        return node.op === "-" ? -Number(operand) : Number(operand);
      }
      case "bin": {
        var l = walk(node.l, values), r = walk(node.r, values);
        return l === null || r === null ? null : arithmetic(node.op, l, r);
      }
      case "cmp": {
        var left = walk(node.l, values);
        for (var i = 0; i < node.ops.length; i++) {
          var right = walk(node.rs[i], values);
          if (left === null || right === null) return false;
          if (!COMPARE[node.ops[i]](left, right)) return false;
          left = right;
        }
        return true;
      }
      case "call": return FUNCTIONS[node.f].apply(null, node.args.map(function (a) { return walk(a, values); }));
    }
    throw new Error("unknown node " + node.k);
  }

  // As Expression.holds: an error counts as false.
  function holds(tree, values) {
    try { return truthy(walk(tree, values)); } catch (e) { return false; }
  }

  // ---- the answers, as check_answers keeps them --------------------------------------------

  function posted(name) {
    var out = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      // A chosen file is not an answer yet: its reference is, once uploaded.
      if (el.name !== name || el.disabled || el.type === "file") return;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) return;
      var v = (el.value || "").trim();
      if (v) out.push(v);
    });
    return out;
  }

  function unique(list) {
    return list.filter(function (v, i) { return list.indexOf(v) === i; });
  }

  var CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
  // Counted in characters, as Python does, not in UTF-16 units.
  function fitText(text, max) { return Array.from(text).length <= max && !CONTROL.test(text); }

  function realDate(text) {
    var parts = text.split("-").map(Number);
    var day = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2]));
    return day.getUTCFullYear() === parts[0] && day.getUTCMonth() === parts[1] - 1 &&
      day.getUTCDate() === parts[2];
  }

  function cascadePath(tree, path) {
    var level = tree, nodes = [];
    for (var i = 0; i < path.length; i++) {
      var node = level.filter(function (n) { return n.v === path[i]; })[0];
      if (!node) return null;
      nodes.push(node);
      level = node.c;
    }
    return nodes;
  }

  // The valid answer to q (an array of strings), or null when the server would not keep one.
  function answerOf(q) {
    var vals = posted(q.id);
    if (q.type !== "cascade") vals = unique(vals);
    if (!vals.length) return null;
    switch (q.type) {
      case "single_choice": case "dropdown": case "yes_no": case "multiple_choice": {
        if (q.type !== "multiple_choice" && vals.length > 1) return null;
        if (!vals.every(function (v) { return q.options.indexOf(v) >= 0; })) return null;
        if (vals.length > 1 && vals.some(function (v) { return q.exclusive.indexOf(v) >= 0; })) return null;
        if (q.other !== null && vals.indexOf(q.other) >= 0) {
          var text = posted(q.id + "." + q.other).join("\n");
          if (!text || !fitText(text, q.otherMaxLength)) return null;
        }
        return vals;
      }
      case "cascade": {
        var nodes = cascadePath(q.tree, vals);
        return nodes && !nodes[nodes.length - 1].c.length ? vals : null;
      }
      case "text": case "long_text":
        return fitText(vals.join("\n"), q.maxLength) ? [vals.join("\n")] : null;
      case "number": case "rating": {
        if (vals.length > 1 && q.type === "rating") return null;
        var n = Number(vals[0]);
        if (!isFinite(n) || (q.type === "rating" && n % 1 !== 0)) return null;
        if ((q.min !== null && q.min !== undefined && n < q.min) || (q.max !== null && q.max !== undefined && n > q.max)) return null;
        return [String(n)];
      }
      case "date":
        if (vals.length > 1 || !/^\d{4}-\d{2}-\d{2}$/.test(vals[0])) return null;
        if (!realDate(vals[0])) return null;
        return vals[0] >= q.minDate && vals[0] <= q.maxDate ? vals : null;
      case "time":
        return vals.length === 1 && /^(?:[01]\d|2[0-3]):[0-5]\d$/.test(vals[0]) ? vals : null;
      case "photo": case "signature":
        return vals.every(function (v) { return /^upl_[A-Za-z0-9_-]{32}$/.test(v); }) ? vals : null;
    }
    return null;
  }

  // Adds q's answer to the expression values as answer_values does; true if it ended the form.
  function record(q, values) {
    if (q.type === "section") return false;
    if (q.type === "matrix") {
      var rows = [];
      q.rows.forEach(function (row) {
        var v = unique(posted(q.id + "." + row));
        if (v.length === 1 && q.options.indexOf(v[0]) >= 0) {
          values[q.id + "__" + row] = v[0];
          rows.push(v[0]);
        }
      });
      if (rows.length === q.rows.length || !rows.length) {
        if (rows.length) values[q.id] = rows;
      } else if (q.required) {
        // A required matrix with an unanswered row keeps none of its rows.
        q.rows.forEach(function (row) { delete values[q.id + "__" + row]; });
      } else {
        values[q.id] = rows;
      }
      return q.end !== null && holds(q.end, values);
    }
    var answer = answerOf(q);
    var chosen = [];
    if (answer !== null) {
      if (q.type === "multiple_choice" || q.type === "cascade" || q.type === "photo") values[q.id] = answer;
      else if (q.type === "number" || q.type === "rating") values[q.id] = Number(answer[0]);
      else values[q.id] = answer[0];
      if (q.type === "cascade") {
        chosen = cascadePath(q.tree, answer).filter(function (n) { return n.end; }).map(function (n) { return n.v; });
      } else {
        chosen = answer.filter(function (v) { return q.ends.indexOf(v) >= 0; });
      }
    }
    return chosen.length > 0 || (q.end !== null && holds(q.end, values));
  }

  // ---- the page --------------------------------------------------------------------------

  function card(q) { return document.getElementById("q-" + q.id); }

  // Each cascade level lists the children of the choice above it; a level with none is hidden
  // and disabled, so it posts nothing.
  function narrowCascade(q) {
    var box = card(q);
    if (!box) return;
    var level = q.tree;
    var selects = box.querySelectorAll("select[data-level]");
    for (var i = 0; i < selects.length; i++) {
      var select = selects[i], wrapper = select.parentNode;
      var keep = select.value;
      var have = level.map(function (n) { return n.v; }).join("\u0001");
      if (select.getAttribute("data-options") !== have) {
        while (select.options.length > 1) select.remove(1);
        while (select.children.length > 1) select.removeChild(select.lastChild);
        level.forEach(function (n) { select.add(new Option(n.l, n.v)); });
        select.setAttribute("data-options", have);
        select.value = level.some(function (n) { return n.v === keep; }) ? keep : "";
      }
      wrapper.hidden = select.disabled = level.length === 0;
      var node = level.filter(function (n) { return n.v === select.value; })[0];
      level = node ? node.c : [];
    }
  }

  function showOthers() {
    var boxes = form.querySelectorAll("[data-other-for]");
    Array.prototype.forEach.call(boxes, function (box) {
      var chosen = posted(box.getAttribute("data-other-for"));
      var input = box.querySelector("input");
      // Kept in view while it holds text, so nothing typed disappears unseen.
      box.hidden = chosen.indexOf(box.getAttribute("data-other-value")) < 0 && !(input && input.value);
    });
  }

  function update() {
    logic.questions.forEach(function (q) { if (q.type === "cascade") narrowCascade(q); });
    showOthers();
    var values = {}, ended = false, number = 0;
    logic.questions.forEach(function (q) {
      var box = card(q);
      var shown = !ended && (q.show === null || holds(q.show, values));
      if (box) box.hidden = !shown;
      if (!shown) return;
      if (q.type !== "section") {
        number += 1;
        var label = box && box.querySelector(".qn");
        if (label) label.textContent = String(number);
      }
      if (record(q, values)) ended = true;
    });
    var end = document.getElementById("form-end");
    if (end) end.hidden = !ended;
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
})();
