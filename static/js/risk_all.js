/* The risk view of all accounts (templates/orders/risk_all.html): the kill switch for all accounts opens its
   confirm dialog (which names how many accounts and which); a confirmed pull closes it and moves focus to the
   receipts, one per account. A refusal or a lost answer is drawn inside the open dialog by refusals.js, which
   stays open for another try. */
(function () {
  "use strict";
  var dialog = document.getElementById("kill-all-dialog");
  var opener = document.getElementById("kill-all-open");
  if (!dialog || !opener) return;
  var form = document.getElementById("kill-all-form");
  var result = document.getElementById("kill-all-result");

  function open() {
    if (dialog.open) return;
    form.reset();
    result.replaceChildren();
    dialog.showModal();
    document.getElementById("kill-all-confirm").focus();
  }
  opener.addEventListener("click", open);
  // Ctrl+Shift+K, the kill switch's shortcut on every page, is here the kill switch for all accounts
  window.addEventListener("keydown", function (event) {
    if (event.ctrlKey && event.shiftKey && (event.key === "K" || event.key === "k")) {
      event.preventDefault();
      event.stopImmediatePropagation();
      open();
    }
  }, true);
  dialog.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-dialog]")) dialog.close();
  });
  var toReceipts = false;          // a pull that answered: focus goes to its receipts once they are drawn
  dialog.addEventListener("close", function () { if (!toReceipts) opener.focus(); });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt !== form || !event.detail.successful) return;
    toReceipts = true;
    dialog.close();
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    var receipts = document.getElementById("kill-receipts");
    if (!toReceipts || !receipts) return;
    toReceipts = false;
    receipts.tabIndex = -1;
    receipts.focus();
  });
})();
