/* The cashier screen's two small helpers. Without them the screen still works: the card field is
   a plain form, and a keyboard-wedge scanner typing into it ends with Enter, which submits it.

   1. A keyboard-wedge scanner types the card number in a fast burst (a few ms per key) and ends
      with Enter. Wherever the focus is, such a burst is taken as a card: the text it typed into
      another field is put back and the card is looked up. Typing at a person's pace is left
      alone (Enter in the card field submits it as usual).
   2. When the till has a serial scanner, its scans arrive as server-sent events and replace the
      customer part of the screen. */
(function () {
  "use strict";

  var FAST_MS = 50;       // a scanner types a key every few ms; a person rarely manages one per 50 ms
  var GAP_MS = 150;       // a pause this long ends a burst (a scanner may hiccup once, never pause)
  var SHORTEST_CARD = 6;

  var form = document.getElementById("find-card");
  if (!form) { return; }
  var cardField = form.elements.card;

  var burst = "";
  var burstStart = 0;
  var lastKeyAt = -Infinity;
  var burstField = null;
  var valueBefore = null;

  function editable(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA") && typeof el.value === "string";
  }

  function lookUp(code) {
    cardField.value = code;
    form.submit();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing) { return; }
    var now = event.timeStamp || performance.now();
    if (event.key === "Enter") {
      var code = burst;
      var scanned = code.length >= SHORTEST_CARD && now - lastKeyAt <= GAP_MS && now - burstStart <= FAST_MS * code.length;
      var field = burstField;
      var before = valueBefore;
      burst = "";
      lastKeyAt = -Infinity;
      if (scanned) {
        event.preventDefault();
        if (field && field !== cardField && editable(field) && before !== null) {
          field.value = before;  // the scanner typed into another field: put it back as it was
        }
        lookUp(code);
      }
      return;
    }
    if (event.key.length !== 1) { return; }
    if (now - lastKeyAt > GAP_MS) {
      burst = "";
      burstStart = now;
      burstField = event.target;
      valueBefore = editable(event.target) ? event.target.value : null;
    }
    burst += event.key;
    lastKeyAt = now;
  }, true);

  // -- scans from the serial scanner -----------------------------------------------------------

  var eventsUrl = document.body.getAttribute("data-scan-events");
  if (!eventsUrl || !window.EventSource) { return; }
  var status = document.getElementById("scanner-status");

  function showStatus(state, text) {
    if (!status) { return; }
    status.className = "scanner scanner-" + state;
    status.querySelector(".text").textContent = text;
  }

  var events = new EventSource(eventsUrl);
  events.addEventListener("error", function () { showStatus("problem", "Reconnecting to the scanner…"); });
  events.addEventListener("scanner", function (event) {
    var space = event.data.indexOf(" ");
    showStatus(event.data.slice(0, space), event.data.slice(space + 1));
  });
  events.addEventListener("card", function (event) {
    var current = document.getElementById("customer");
    var holder = document.createElement("template");
    holder.innerHTML = event.data.trim();
    var fresh = holder.content.firstElementChild;
    if (!current || !fresh) { return; }
    current.replaceWith(fresh);
    var flashes = document.getElementById("flashes");
    if (flashes) { flashes.textContent = ""; }
    var enrol = document.getElementById("enrol");
    if (enrol && fresh.querySelector(".customer-grid")) { enrol.open = false; }  // someone is at the counter
    var card = fresh.getAttribute("data-card");
    if (card) {
      history.replaceState(null, "", form.action + "?card=" + encodeURIComponent(card));
    }
    cardField.value = "";
    cardField.focus();
  });
}());
