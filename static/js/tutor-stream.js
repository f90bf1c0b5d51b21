// Streams tutor replies into the page: each reply still being written carries
// data-stream-url (server-sent events: "token" with text, then "end") and
// data-final-url (the finished reply as HTML from the server, swapped in by htmx).
// Streamed text is only ever added as text nodes, so nothing in it can run as HTML.
(function () {
  "use strict";

  function follow(item) {
    if (item.dataset.following) return;
    item.dataset.following = "1";
    var output = item.querySelector("[data-stream-text]");
    var status = item.querySelector("[data-stream-status]");
    var source = new EventSource(item.dataset.streamUrl);
    var finished = false;

    function finish() {
      if (finished) return;
      finished = true;
      source.close();
      htmx.ajax("GET", item.dataset.finalUrl, { target: item, swap: "outerHTML" });
    }

    source.addEventListener("token", function (event) {
      var data = JSON.parse(event.data);
      output.appendChild(document.createTextNode(data.text));
      if (status && status.dataset.writing !== "1") {
        status.dataset.writing = "1";
        status.textContent = status.dataset.writingText || status.textContent;
      }
    });
    source.addEventListener("end", finish);
    source.addEventListener("error", function () {
      // The browser reconnects by itself (sending Last-Event-ID) unless the server
      // refused the stream; then show whatever the server has for this reply.
      if (source.readyState === EventSource.CLOSED) finish();
    });
  }

  htmx.onLoad(function (root) {
    var items = root.matches && root.matches("[data-stream-url]") ? [root] : [];
    root.querySelectorAll("[data-stream-url]").forEach(function (item) {
      items.push(item);
    });
    items.forEach(follow);
  });
})();
