// Live updates: when the server announces a change (server-sent events read from its
// journal), fetch this same page again and swap its content in. Without JavaScript the
// page is complete as served; this only keeps it fresh.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource || !window.fetch) return;
  var status = document.getElementById("live-status");
  var pending = false;
  var again = false;

  function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var here = document.getElementById("live");
        if (!fresh || !here) return;
        var active = document.activeElement;
        // Keep what a person is typing or has focused inside a form: refresh later.
        if (active && here.contains(active) && active.form) { again = true; return; }
        here.innerHTML = fresh.innerHTML;
        if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () {
        pending = false;
        if (again) { again = false; window.setTimeout(refresh, 250); }
      });
  }

  var source = new EventSource(url);
  // A reconnect resumes after the last change seen (EventSource sends Last-Event-ID).
  source.addEventListener("change", refresh);
})();
