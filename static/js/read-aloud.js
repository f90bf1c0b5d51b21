// Read-aloud of tutor replies with the browser's own speech synthesis (nothing leaves the
// browser). Any element with data-read-aloud gets a "Read aloud" button when the learner
// turned the preference on (class pref-read-aloud on <body>); with data-read-aloud="auto"
// it is also read as soon as it is marked finished (data-read-aloud-ready), e.g. by the
// tutor's stream script when a reply ends. Button texts: the element's
// data-read-aloud-label / data-read-aloud-stop (translated by its template), else English or
// Spanish after <html lang>.
(function () {
  "use strict";

  if (!("speechSynthesis" in window)) return;

  var WORDS = {
    en: { read: "Read aloud", stop: "Stop reading" },
    es: { read: "Leer en voz alta", stop: "Dejar de leer" },
  };

  function enabled() {
    return document.body.classList.contains("pref-read-aloud");
  }

  function speak(text) {
    window.speechSynthesis.cancel();
    var utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = document.documentElement.lang || "en";
    window.speechSynthesis.speak(utterance);
    return utterance;
  }

  function attach(element) {
    if (element.dataset.readAloudAttached) return;
    element.dataset.readAloudAttached = "1";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button-secondary read-aloud-button";
    var words = WORDS[(document.documentElement.lang || "en").slice(0, 2)] || WORDS.en;
    var label = element.dataset.readAloudLabel || words.read;
    var stop = element.dataset.readAloudStop || words.stop;
    button.textContent = label;
    button.addEventListener("click", function () {
      if (button.getAttribute("aria-pressed") === "true") {
        window.speechSynthesis.cancel();
        return;
      }
      var utterance = speak(element.innerText);
      button.setAttribute("aria-pressed", "true");
      button.textContent = stop;
      utterance.addEventListener("end", function () {
        button.setAttribute("aria-pressed", "false");
        button.textContent = label;
      });
    });
    element.insertAdjacentElement("afterend", button);
    if (element.dataset.readAloud === "auto" && element.hasAttribute("data-read-aloud-ready")) {
      speak(element.innerText);
    }
  }

  function scan(root) {
    if (!enabled()) return;
    if (root.matches && root.matches("[data-read-aloud]")) attach(root);
    (root.querySelectorAll ? root : document).querySelectorAll("[data-read-aloud]").forEach(attach);
  }

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
  // htmx swaps in new replies; attach to them too.
  document.addEventListener("htmx:afterSettle", function (event) { scan(event.target); });

  window.readAloud = { speak: speak, scan: scan };
})();
