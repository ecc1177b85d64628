/* The order ticket's live preview, its button and its confirm step (issue #14, points 2-4).

   The preview itself is htmx (#ticket-live in desk.html asks for it 250 ms after the last change); the server
   draws the figures, the resolved bracket prices and the submit button (label, side colour, disabled by a
   venue's refusal). Here only what keeps them honest between two previews:
   - a change makes the shown preview stale: the button waits for the fresh one, so what is sent is what was
     shown (the server resolves the exits from the same anchor);
   - the confirm step's Back closes the question;
   - a refusal drawn beside a field goes once that field changes, and the others are shown outdated;
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
    // no fresh preview came (an error answer, an expired session, no answer at all): let the person send and
    // see the server's own answer. An aborted request (a newer key replaced it) keeps waiting for the newer one.
    var detail = e.detail || {}, xhr = detail.xhr;
    var live = (detail.requestConfig && detail.requestConfig.elt) || detail.elt;   // beforeSwap fires on the target
    if (!live || live.id !== "ticket-live") return;
    if (e.type === "htmx:afterRequest" && (!xhr || xhr.status < 400)) return;
    var button = submitButton();
    if (button && button.dataset.stale) {
      button.disabled = false;
      delete button.dataset.stale;
      button.removeAttribute("aria-busy");
    }
  }

  function ticketPreviewRefused(e) {
    // the preview's own refusal (an expired session, a server error, no answer) is said in the preview, not in
    // the ticket's outcome, which stays for what the submission answers (static/js/refusals.js)
    var detail = e.detail || {}, xhr = detail.xhr;
    var live = (detail.requestConfig && detail.requestConfig.elt) || detail.elt;   // beforeSwap fires on the target
    if (!live || live.id !== "ticket-live") return;
    if (e.type === "htmx:beforeSwap" && (!xhr || xhr.status < 400)) return;
    e.stopPropagation();
    detail.shouldSwap = false;
    detail.isError = false;
    var text = "No preview: no answer from the desk (network failure).";
    if (xhr && xhr.status >= 400) {
      var holder = document.createElement("template");
      holder.innerHTML = xhr.getResponseHeader("X-Desk-Notice") ? xhr.responseText : "";
      text = "No preview: " + (holder.content.textContent.trim() || "HTTP " + xhr.status + " " + xhr.statusText);
    }
    var p = document.createElement("p");
    p.className = "error";
    p.id = "ticket-preview-refused";
    p.textContent = text;
    var preview = document.getElementById("ticket-preview");
    if (preview) {                                   // the live quote stays: the socket keeps pushing it there
      Array.prototype.slice.call(preview.children).forEach(function (child) {
        if (child.id !== "ticket-quote") child.remove();
      });
      preview.prepend(p);
    }
    ticketPreviewFailed(e);
  }

  function ticketRefusalOutdated(e) {
    // a refusal speaks of the ticket as it was sent: once a field changes, that field's own error goes (the live
    // preview judges the new value), and the rest are shown as said of the ticket before the change
    var form = e.target.closest && e.target.closest("#ticket-form");
    if (!form) return;
    var label = e.target.closest("label");
    if (label) {
      Array.prototype.slice.call(label.querySelectorAll(".field-error")).forEach(function (error) { error.remove(); });
    }
    Array.prototype.slice.call(form.querySelectorAll(".field-error, #ticket-form > p.error[role=alert]"))
      .forEach(function (error) {
        if (error.classList.contains("outdated")) return;
        error.classList.add("outdated");
        error.removeAttribute("role");
        error.title = "said of the ticket as it was sent, before your change";
      });
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
  document.body.addEventListener("input", ticketRefusalOutdated);
  document.body.addEventListener("htmx:afterRequest", ticketPreviewFailed);
  // capturing, so the preview's refusal is handled here before refusals.js would put it on the ticket
  document.addEventListener("htmx:beforeSwap", ticketPreviewRefused, true);
  document.addEventListener("htmx:sendError", ticketPreviewRefused, true);
  document.addEventListener("htmx:timeout", ticketPreviewRefused, true);
  document.body.addEventListener("click", ticketConfirmBack);
  document.body.addEventListener("change", ticketLegModes);
  document.body.addEventListener("htmx:afterSwap", ticketLegModes);
  ticketLegModes();
})();
