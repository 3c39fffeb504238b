// Live countdown of the time left to pay. The server already rendered the time left,
// so without JavaScript the page still says it; this only makes it tick. It counts
// from the seconds the server computed, not from the browser's clock, which may be off.
(function () {
  "use strict";
  var element = document.querySelector("[data-countdown]");
  if (!element) { return; }
  var deadline = Date.now() + Number(element.getAttribute("data-seconds-left")) * 1000;

  function format(seconds) {
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function tick() {
    var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    element.textContent = format(left);
    if (left > 0) {
      window.setTimeout(tick, 250);
      return;
    }
    var note = document.querySelector(".expired-note");
    if (note) { note.hidden = false; }
    document.querySelectorAll(".pay-form").forEach(function (form) {
      form.querySelectorAll("button, input").forEach(function (control) { control.disabled = true; });
    });
  }

  tick();
})();
