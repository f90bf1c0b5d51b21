// Essay drafts kept in this browser as they are typed, so nothing typed is lost to an
// expired session, a refused form, a body too large to send or a closed tab.
//
// A textarea with data-draft (its form's action is the key) or data-draft-key="<key>" is
// saved to localStorage on every pause in typing and restored when the page opens with
// it empty. A page that shows ".messages .essay-submitted" (the server's "submitted"
// message) clears the drafts of its forms first: that text has arrived. A form with
// data-max-bytes is not sent when its essay is larger: it says so instead, keeping the text.
// Messages come from the page's [data-draft-status] element (translated there).
(function () {
  "use strict";

  var PREFIX = "essay-draft:";

  function store() {
    try {
      return window.localStorage;
    } catch (error) {
      return null; // storage disabled
    }
  }

  function keyOf(box) {
    var key = box.dataset.draftKey || (box.form && box.form.getAttribute("action"));
    return key ? PREFIX + key : null;
  }

  function statusOf(box) {
    var scope = box.form || box.parentElement;
    return (scope && scope.querySelector("[data-draft-status]")) ||
      document.querySelector("[data-draft-status]");
  }

  function say(box, name, extra) {
    var status = statusOf(box);
    if (!status || !status.dataset[name]) return;
    status.textContent = status.dataset[name] + (extra ? " " + extra : "");
    status.hidden = false;
  }

  function read(key) {
    var storage = store();
    if (!storage) return null;
    try {
      return JSON.parse(storage.getItem(key) || "null");
    } catch (error) {
      return null;
    }
  }

  function save(box, key) {
    var storage = store();
    if (!storage) return;
    try {
      if (box.value.trim()) {
        storage.setItem(key, JSON.stringify({ text: box.value, saved: new Date().toISOString() }));
      } else {
        storage.removeItem(key);
      }
    } catch (error) {
      say(box, "tooLargeToKeep"); // quota exceeded
    }
  }

  var submitted = document.querySelector(".messages .essay-submitted") !== null;
  var boxes = document.querySelectorAll("textarea[data-draft], textarea[data-draft-key]");

  boxes.forEach(function (box) {
    var key = keyOf(box);
    if (!key) return;
    var storage = store();
    if (submitted && storage) storage.removeItem(key);
    var draft = read(key);
    if (draft && draft.text && !box.value.trim()) {
      box.value = draft.text;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      say(box, "restored", new Date(draft.saved).toLocaleString());
    }
    var timer = null;
    box.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { save(box, key); }, 400);
    });
    window.addEventListener("pagehide", function () { save(box, key); });
    var form = box.form;
    if (form && form.dataset.maxBytes) {
      form.addEventListener("submit", function (event) {
        save(box, key);
        var size = new TextEncoder().encode(box.value).length;
        if (size > Number(form.dataset.maxBytes)) {
          event.preventDefault();
          say(box, "tooLargeToSend");
        }
      });
    }
  });
})();
