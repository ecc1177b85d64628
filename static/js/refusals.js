/* Refusals, the placed order's banner and the desk's notifications (issue #14, point 1).

   htmx swaps only 2xx answers. Here every other outcome of an htmx request is shown to the person:
   - an error answer the server drew as the fragment asked for (header X-Desk-Fragment: the ticket with its
     message beside the field, or above the form) is swapped in like a 200, so the earlier banner goes;
   - any other error answer (a 5xx page, a 403, an expired session's 401 with its X-Desk-Notice) and a
     request that never got an answer (network failure, timeout) show a message where the request came from:
     on the ticket in place of its banner; in an open <dialog> (the kill switch's) in that dialog, which is
     drawn above everything else, notifications included, and stays open so it can be sent again; elsewhere
     as a notification that stays until dismissed.
   A form whose server error or lost answer may have left its work half done says so in its
   data-unfinished-note, shown after the message. */
(function () {
  "use strict";
  var body = document.body;
  var TOAST_MS = 6000, ERROR_MS = 15000, MAX_TOASTS = 4;
  var WORDS = {400: "The desk refused the request", 401: "You are not logged in", 403: "Forbidden: your role may not do this",
               404: "Not found", 409: "Refused: it changed meanwhile", 413: "The request is too large",
               429: "Too many requests: wait a moment and send again"};

  function paragraph(text, className) {
    var p = document.createElement("p");
    p.className = className || "error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    return p;
  }

  function onTicket(elt) {
    return !!(elt && elt.closest && elt.closest("#ticket"));
  }

  function unfinishedNote(elt) {
    var holder = elt && elt.closest && elt.closest("[data-unfinished-note]");
    return holder ? " " + holder.dataset.unfinishedNote : "";
  }

  function describeAnswer(xhr, elt) {
    var status = xhr.status;
    var words = WORDS[status] || (status >= 500 ? "The desk could not complete the request (server error)"
                                                : "The desk refused the request");
    var text = words + " — HTTP " + status + (xhr.statusText ? " " + xhr.statusText : "") + ".";
    if (status >= 500 && onTicket(elt)) {
      text += " The order may not have been placed: check the blotter. Sending this same ticket again never places it twice.";
    } else if (status >= 500) {
      text += unfinishedNote(elt);
    }
    return paragraph(text);
  }

  function describeNoAnswer(elt) {
    var text = "No answer from the desk (network failure): nothing was confirmed. Check your connection";
    if (onTicket(elt)) text += " and the blotter; sending this same ticket again never places it twice.";
    else text += ", then try again." + unfinishedNote(elt);
    return paragraph(text);
  }

  function serverNotice(xhr) {
    var holder = document.createElement("template");
    holder.innerHTML = xhr.responseText;
    return holder.content;
  }

  // -- the ticket: a refusal replaces the banner of the order placed before -------------------------------
  function showOnTicket(node) {
    var outcome = document.getElementById("ticket-outcome");
    if (!outcome) return false;
    outcome.dataset.order = "";                       // the earlier order's pushed banner is no longer wanted
    outcome.dataset.approval = "";                    // nor the banner of an order waiting for approval
    outcome.replaceChildren(node);
    document.querySelectorAll("#ticket-form .field-error, #ticket-form > p.error").forEach(function (old) {
      old.remove();                                   // they were about the attempt before
    });
    return true;
  }

  // -- a dialog: the page under it, notifications included, cannot be seen or clicked while it is open --
  function showInDialog(elt, target, node) {
    var dialog = elt && elt.closest && elt.closest("dialog[open]");
    if (!dialog) return false;
    var place = target && dialog.contains(target) ? target : dialog.querySelector("[aria-live]");
    if (!place) {
      place = document.createElement("div");
      place.setAttribute("aria-live", "polite");
      dialog.appendChild(place);
    }
    place.replaceChildren(node);                      // the attempt before is no longer the news
    return true;
  }

  function refuse(e, node, sticky) {
    var elt = requester(e);
    if (onTicket(elt) && showOnTicket(node)) return;
    if (showInDialog(elt, e.detail.target, node)) return;
    toast(node, sticky ? "sticky" : "error");
  }

  function requester(e) {
    return (e.detail.requestConfig && e.detail.requestConfig.elt) || e.detail.elt || e.target;
  }

  body.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (!xhr || xhr.status < 400) return;
    e.detail.isError = false;                         // shown here, not logged as a failure by htmx
    if (xhr.getResponseHeader("X-Desk-Fragment")) {   // the server drew the refusal where it belongs
      e.detail.shouldSwap = true;
      return;
    }
    e.detail.shouldSwap = false;
    if (xhr.getResponseHeader("X-Desk-Notice")) refuse(e, serverNotice(xhr), xhr.status === 401);
    else refuse(e, describeAnswer(xhr, requester(e)));
  });

  function noAnswer(e) {
    refuse(e, describeNoAnswer(requester(e)));
  }
  body.addEventListener("htmx:sendError", noAnswer);
  body.addEventListener("htmx:timeout", noAnswer);

  // A pushed banner is for the order the ticket shows now, or the approval request that order waits for (once
  // approved, its banner is the placed order's): after a refusal or a newer order it is dropped.
  body.addEventListener("htmx:oobBeforeSwap", function (e) {
    var target = e.detail.target;
    if (!target || target.id !== "ticket-outcome") return;
    var pushed = e.detail.fragment && e.detail.fragment.firstElementChild;
    var sameOrder = pushed && target.dataset.order && pushed.dataset.order === target.dataset.order;
    var sameApproval = pushed && target.dataset.approval && pushed.dataset.approval === target.dataset.approval;
    if (!sameOrder && !sameApproval) e.detail.shouldSwap = false;
  });

  // -- notifications: fills and stop-outs (pushed), refusals away from the ticket ------------------------
  function toastBox() {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      box.className = "toasts";
      body.appendChild(box);
    }
    return box;
  }

  function toast(node, kind) {
    var item = document.createElement("div");
    item.className = "toast toast-" + kind;
    item.appendChild(node);                           // the message itself is role="alert"
    toastBox().appendChild(item);
    settleToasts();
  }

  function settleToasts() {
    var box = document.getElementById("toasts");
    if (!box) return;
    box.querySelectorAll(".toast:not([data-timed])").forEach(function (item) {
      item.dataset.timed = "1";
      item.title = "Click to dismiss";
      if (item.classList.contains("toast-sticky")) return;
      var ms = item.classList.contains("toast-error") ? ERROR_MS : TOAST_MS;
      setTimeout(function () { item.remove(); }, ms);
    });
    var all = box.querySelectorAll(".toast");
    for (var i = 0; i < all.length - MAX_TOASTS; i++) all[i].remove();     // the oldest go first
  }

  body.addEventListener("htmx:oobAfterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "toasts") settleToasts();
  });
  body.addEventListener("click", function (e) {
    var item = e.target.closest && e.target.closest(".toast");
    if (item && !e.target.closest("a")) item.remove();
  });
})();
