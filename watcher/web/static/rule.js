// The rule page: check the rule as it is typed and show the error at its position. The page works without this
// (the server shows the same error after "Try"); the check is a GET that changes nothing.
(function () {
  "use strict";
  var area = document.getElementById("rule");
  var box = document.getElementById("rule-error");
  if (!area || !box) return;
  var timer = null, asked = 0;
  function show(result, rule) {
    box.textContent = "";
    if (result.ok) { box.hidden = true; return; }
    var message = document.createElement("span");
    message.id = "rule-error-message";
    message.textContent = result.message + (result.position === null ? "" : " (at position " + (result.position + 1) + ")");
    box.appendChild(message);
    if (result.position !== null) {
      var pre = document.createElement("pre"), mark = document.createElement("mark");
      pre.className = "rule-caret";
      pre.appendChild(document.createTextNode(rule.slice(0, result.position)));
      mark.textContent = rule.charAt(result.position) || " ";
      pre.appendChild(mark);
      pre.appendChild(document.createTextNode(rule.slice(result.position + 1)));
      box.appendChild(pre);
    }
    box.hidden = false;
  }
  function check() {
    var rule = area.value, mine = ++asked;
    fetch(area.dataset.check + "?rule=" + encodeURIComponent(rule), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (result) { if (mine === asked) show(result, rule); })
      .catch(function () { /* the server check after "Try" still says it */ });
  }
  area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 250); });
})();
