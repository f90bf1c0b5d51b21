// Grading pages: a live word count under the essay box, and htmx swapping 422 answers
// (a form with its errors) like successful ones.
(function () {
  "use strict";

  if (window.htmx && htmx.config && Array.isArray(htmx.config.responseHandling)) {
    htmx.config.responseHandling.unshift({ code: "422", swap: true, error: false });
  }

  function countWords(text) {
    var words = text.trim().split(/\s+/);
    return words[0] === "" ? 0 : words.length;
  }

  document.querySelectorAll("[data-word-count-for]").forEach(function (output) {
    var box = document.getElementById(output.dataset.wordCountFor);
    if (!box) return;
    function update() {
      var n = countWords(box.value);
      output.textContent = n + " " + (n === 1 ? output.dataset.one : output.dataset.many);
    }
    box.addEventListener("input", update);
    update();
  });
})();
