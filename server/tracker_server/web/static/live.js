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
    // The lanes keep where they were scrolled to (their box scrolls on a phone).
    var scrolled = Array.prototype.map.call(here.querySelectorAll(".lanes-scroll"),
      function (box) { return box.scrollLeft; });
    here.innerHTML = fresh.innerHTML;
    var boxes = here.querySelectorAll(".lanes-scroll");
    for (var i = 0; i < boxes.length && i < scrolled.length; i++) boxes[i].scrollLeft = scrolled[i];
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

// The lanes' "now" line: moved as time passes (the server drew it at render), and kept
// in view when the lanes scroll inside their box on a narrow screen.
(function () {
  "use strict";
  function lanes() { return document.querySelector("svg.lanes"); }

  function moveNow() {
    var svg = lanes();
    var group = document.getElementById("now-line");
    if (!svg || !group) return;
    var start = Date.parse(svg.getAttribute("data-start"));
    var end = Date.parse(svg.getAttribute("data-end"));
    var left = parseFloat(svg.getAttribute("data-left"));
    var plot = parseFloat(svg.getAttribute("data-plot"));
    var now = Date.now();
    if (isNaN(start) || isNaN(end) || now >= end) {
      group.setAttribute("display", "none");
      return;
    }
    var x = (left + (now - start) / (end - start) * plot).toFixed(1);
    var line = group.querySelector("line");
    line.setAttribute("x1", x);
    line.setAttribute("x2", x);
    var label = group.querySelector("text");
    if (!label) return;
    var atEnd = label.getAttribute("text-anchor") === "end";
    label.setAttribute("x", (parseFloat(x) + (atEnd ? -4 : 4)).toFixed(1));
    label.textContent = "now " + new Date(now).toISOString().slice(11, 16) + " UTC";
  }

  // The earliest x among these elements (NaN: none).
  function earliest(selector) {
    var found = document.querySelectorAll(selector);
    var x = NaN;
    for (var i = 0; i < found.length; i++) {
      var at = parseFloat(found[i].getAttribute("x"));
      if (isNaN(x) || at < x) x = at;
    }
    return x;
  }

  // The now line in view, else the earliest overlap, else the earliest bar of a lane.
  function showNow() {
    var svg = lanes();
    var box = svg && svg.parentNode;
    if (!box || box.scrollWidth <= box.clientWidth) return;
    var line = document.querySelector("#now-line line");
    var x = line ? parseFloat(line.getAttribute("x1")) : earliest("svg.lanes .halo");
    if (isNaN(x)) x = earliest("svg.lanes .lane-service .bar");
    if (isNaN(x)) return;
    var at = x / svg.viewBox.baseVal.width * svg.clientWidth;
    box.scrollLeft = Math.max(at - box.clientWidth * (line ? 0.75 : 0.5), 0);
  }

  // The lane labels stay at the left edge of the box while the lanes scroll under them.
  function stickLabels(event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("lanes-scroll")) return;
    var svg = box.querySelector("svg.lanes");
    var labels = document.getElementById("lane-labels");
    if (!svg || !labels || !svg.clientWidth) return;
    var shift = box.scrollLeft * svg.viewBox.baseVal.width / svg.clientWidth;
    labels.setAttribute("transform", "translate(" + shift.toFixed(1) + " 0)");
  }

  document.addEventListener("scroll", stickLabels, true);
  showNow();
  window.setInterval(moveNow, 30000);
})();
