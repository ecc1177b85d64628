/* The order ticket's live preview, its button and its confirm step (issue #14, points 2-4).

   The preview itself is htmx (#ticket-live in desk.html asks for it 250 ms after the last change); the server
   draws the figures, the resolved bracket prices and the submit button (label, side colour, disabled by a
   venue's refusal). Here only what keeps them honest between two previews:
   - a change makes the shown preview stale: the button waits for the fresh one, so what is sent is what was
     shown (the server resolves the exits from the same anchor);
   - the confirm step's Back closes the question;
   - each leg's mode says what its field holds (price, offset, percent, R). */
(function () {
  "use strict";

  function submitButton() { return document.getElementById("ticket-submit"); }

  function ticketPreviewStale(e) {
    var form = e.target.closest && e.target.closest("#ticket-form");
    var button = submitButton();
    if (!form || !button || button.disabled || e.target.name === "override_reason") return;
    button.disabled = true;
    button.dataset.stale = "1";
    button.setAttribute("aria-busy", "true");
  }

  function ticketPreviewFailed(e) {
    // no fresh preview came (network, error answer): let the person send and see the server's answer
    if (!e.detail || e.detail.successful) return;
    var live = e.detail.elt;
    if (!live || live.id !== "ticket-live") return;
    var button = submitButton();
    if (button && button.dataset.stale) {
      button.disabled = false;
      delete button.dataset.stale;
      button.removeAttribute("aria-busy");
    }
  }

  function ticketConfirmBack(e) {
    if (!e.target.closest || !e.target.closest("#ticket-confirm-back")) return;
    var panel = document.getElementById("ticket-confirm");
    if (panel) panel.remove();
    var button = submitButton();
    if (button) button.focus();
  }

  var PLACEHOLDERS = {PRICE: "price", OFFSET: "distance", PERCENT: "% of entry", R: "× risk"};

  function ticketLegModes() {
    [["ticket-sl", "ticket-sl-mode"], ["ticket-tp", "ticket-tp-mode"]].forEach(function (pair) {
      var input = document.getElementById(pair[0]), mode = document.getElementById(pair[1]);
      if (input && mode) input.placeholder = PLACEHOLDERS[mode.value] || "";
    });
    var byRisk = document.getElementById("ticket-size-by-risk"), quantity = document.getElementById("ticket-quantity");
    if (byRisk && quantity) {
      quantity.readOnly = byRisk.checked;
      quantity.placeholder = byRisk.checked ? "by risk" : "";
    }
  }

  // "input" only: every field (text, select, radio, checkbox, a datalist pick) fires it as its value changes;
  // the "change" a text field fires on blur would disable the button under the very click that blurred it
  document.body.addEventListener("input", ticketPreviewStale);
  document.body.addEventListener("htmx:afterRequest", ticketPreviewFailed);
  document.body.addEventListener("click", ticketConfirmBack);
  document.body.addEventListener("change", ticketLegModes);
  document.body.addEventListener("htmx:afterSwap", ticketLegModes);
  ticketLegModes();
})();
