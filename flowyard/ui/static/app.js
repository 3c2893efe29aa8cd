// Flowyard UI: the little behaviour htmx does not give.
// - Live logs stick to the bottom while the reader is at the bottom.
// - The page keeps at most MAX_LINES live lines (older ones are dropped, with a note).
// - A reconnecting log stream resumes after the last line received, not from the start.
// - A state change announced by the log stream refreshes the run's status at once
//   (instead of at the next poll); the first announcement is the state already shown.
// - When the stream ends (the run finished), its live indicator stops pulsing.
// - A newly created API key is selected on focus, ready to copy.
(function () {
  "use strict";
  var MAX_LINES = 5000;

  function scroller(elt) {
    return elt && elt.closest ? elt.closest(".log-scroll") : null;
  }

  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var box = scroller(evt.target);
    if (box) { box.dataset.stick = atBottom(box) ? "1" : ""; }
  });

  document.addEventListener("htmx:sseMessage", function (evt) {
    var target = evt.target;
    var data = evt.detail || {};
    if (data.type === "end") {
      var ended = target.closest(".log-live");
      if (ended) { ended.classList.add("ended"); }
    }
    if (data.type === "state") {
      var stream = target.closest("[sse-connect]");
      if (stream && stream.dataset.stateSeen) {
        document.body.dispatchEvent(new CustomEvent("run-state-changed"));
      } else if (stream) {
        stream.dataset.stateSeen = "1";
      }
    }
    var box = scroller(target);
    if (!box) { return; }
    var id = data.lastEventId;
    var live = target.closest("[sse-connect]");
    if (id && live) {
      var url = new URL(live.getAttribute("sse-connect"), window.location.href);
      url.searchParams.set("after", id);
      live.setAttribute("sse-connect", url.pathname + url.search);
    }
    var lines = box.querySelectorAll(".log-line");
    if (lines.length > MAX_LINES) {
      for (var i = 0; i < lines.length - MAX_LINES; i++) { lines[i].remove(); }
      if (!box.querySelector(".log-trimmed")) {
        var note = document.createElement("p");
        note.className = "log-trimmed";
        note.textContent = "Earlier lines were removed from this page to keep it fast. Reload to page through every line.";
        box.insertBefore(note, box.firstChild);
      }
    }
    if (box.dataset.stick === "1") { box.scrollTop = box.scrollHeight; }
  });

  document.addEventListener("focusin", function (evt) {
    if (evt.target && evt.target.classList && evt.target.classList.contains("key-value")) {
      evt.target.select();
    }
  });
})();
