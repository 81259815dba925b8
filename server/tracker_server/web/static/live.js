// Live updates: when the server announces a change (server-sent events read from its
// journal), fetch this same page again and swap its content in. Without JavaScript the
// page is complete as served; this only keeps it fresh.
//
// While a form field has focus (someone is choosing a filter or typing a reason), the
// content is left alone: the changes are counted and a "N updates, refresh" button says
// so; it refreshes when pressed, or by itself once focus leaves an untouched form.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource || !window.fetch) return;
  var status = document.getElementById("live-status");
  var pending = false;
  var again = false;
  var missed = 0;
  var touched = false;

  function content() { return document.getElementById("live"); }

  function typing() {
    var active = document.activeElement;
    var here = content();
    return !!(active && here && here.contains(active) && active.form);
  }

  function say(text) {
    if (!status) return;
    status.textContent = text;
  }

  function offerRefresh() {
    if (!status) return;
    status.textContent = "";
    var button = document.createElement("button");
    button.type = "button";
    button.id = "live-refresh";
    button.textContent = missed + (missed === 1 ? " update" : " updates") + ", refresh";
    button.addEventListener("click", function () {
      touched = false;
      if (!pending) refresh(true);
    });
    status.appendChild(button);
  }

  function held() {
    missed += 1;
    offerRefresh();
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
    var here = content();
    if (!fresh || !here) return;
    here.innerHTML = fresh.innerHTML;
    missed = 0;
    touched = false;
    say("Updated " + new Date().toLocaleTimeString());
    relativeTimes();
  }

  function refresh(asked) {
    if (!asked && typing()) { held(); return; }
    if (pending) { again = true; return; }
    pending = true;
    fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        // Focus arrived while the page was on its way: keep what is being typed.
        if (!asked && typing()) { held(); return; }
        swap(html);
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () {
        pending = false;
        if (again) { again = false; refresh(false); }
      });
  }

  // Focus left the forms: an untouched form can be refreshed now; a touched one waits
  // for the button (a swap would throw away what was typed).
  document.addEventListener("focusout", function () {
    window.setTimeout(function () {
      if (missed > 0 && !touched && !pending && !typing()) refresh(false);
    }, 0);
  });
  document.addEventListener("input", function (event) {
    if (event.target && event.target.form) touched = true;
  });

  // "in 40 min", "3 h ago": kept true between updates (the server wrote them at render).
  function span(seconds) {
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) {
      return minutes && hours < 10 ? hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min"
        : hours + " h";
    }
    return Math.floor(hours / 24) + " d";
  }

  function relativeTimes() {
    var now = Date.now();
    var found = document.querySelectorAll("[data-relative]");
    for (var i = 0; i < found.length; i++) {
      var moment = Date.parse(found[i].getAttribute("data-relative"));
      if (isNaN(moment)) continue;
      var seconds = (moment - now) / 1000;
      found[i].textContent = Math.abs(seconds) < 60 ? "now"
        : seconds > 0 ? "in " + span(seconds) : span(-seconds) + " ago";
    }
  }
  window.setInterval(relativeTimes, 30000);

  var source = new EventSource(url);
  // A reconnect resumes after the last change seen (EventSource sends Last-Event-ID).
  source.addEventListener("change", function () { refresh(false); });
})();
