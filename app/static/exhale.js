/* exhale: small improvements when JavaScript runs. Every form works without it. */
(function () {
  "use strict";
  // An error summary takes focus, so a screen reader announces it and the keyboard starts there.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.focus();
  }
  // A link in the summary focuses its field (and opens the expander it sits in).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".error-summary__list a");
    if (!link) { return; }
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (!target) { return; }
    var details = target.closest("details");
    if (details) { details.open = true; }
    event.preventDefault();
    target.focus();
    var legend = target.closest("fieldset");
    (legend || target).scrollIntoView();
  });
})();
