// Keyboard shortcuts of the essay review page (SpeedGrader-style):
//   A          save every criterion as chosen and open the next essay ("approve")
//   N / P      next / previous essay (without saving)
//   1–9        focus that criterion's score (arrow keys then move between levels)
//   Ctrl+Enter save and next, from inside a box
//   Esc        leave a box, so that the letter keys work again
// The page works without this file: every shortcut has a button or a link.
(function () {
  "use strict";

  var form = document.getElementById("review-form");
  if (!form) return;

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) return true;
    if (tag !== "input") return false;
    return ["radio", "checkbox", "button", "submit"].indexOf(target.type) === -1;
  }

  function approve() {
    var button = form.querySelector("[data-shortcut=approve]");
    if (!button) return;
    if (form.requestSubmit) form.requestSubmit(button);
    else button.click();
  }

  function follow(name) {
    var link = document.querySelector("a[data-shortcut=" + name + "]");
    if (link) window.location.assign(link.href);
  }

  function focusCriterion(number) {
    var box = form.querySelector("[data-criterion-number='" + number + "']");
    if (!box) return;
    var inputs = box.querySelectorAll("[data-score-input]");
    var target = box.querySelector("[data-score-input]:checked") || inputs[0];
    if (!target) return;
    target.focus();
    box.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.isComposing) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (form.contains(event.target)) {
        event.preventDefault();
        approve();
      }
      return;
    }
    if (event.key === "Escape" && typing(event.target)) {
      event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || typing(event.target)) return;
    var key = event.key.toLowerCase();
    if (key === "a") {
      event.preventDefault();
      approve();
    } else if (key === "n") {
      event.preventDefault();
      follow("next");
    } else if (key === "p") {
      event.preventDefault();
      follow("previous");
    } else if (/^[1-9]$/.test(key)) {
      event.preventDefault();
      focusCriterion(key);
    }
  });
})();
