/* The header's account switcher (templates/orders/switcher.html): a <details> of links, which needs no script to
   open, follow or close. Here it also closes as a menu does: on Escape (focus back on its button), on a click
   elsewhere on the page, and when focus moves out of it. */
(function () {
  "use strict";
  var switcher = document.getElementById("account-switcher");
  if (!switcher) return;
  var summary = switcher.querySelector("summary");

  function close(refocus) {
    if (!switcher.open) return;
    switcher.open = false;
    if (refocus) summary.focus();
  }

  switcher.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      close(true);
    }
  });
  document.addEventListener("click", function (event) {
    if (!switcher.contains(event.target)) close(false);
  });
  switcher.addEventListener("focusout", function (event) {
    if (event.relatedTarget && !switcher.contains(event.relatedTarget)) close(false);
  });
})();
