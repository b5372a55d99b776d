// The console's own script (the CSP allows no inline script): buttons that print the page, buttons that copy.
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) { window.print(); }
  var copy = event.target.closest("[data-copy]");
  if (copy) {
    var field = document.querySelector(copy.getAttribute("data-copy"));
    if (!field) { return; }
    field.select();
    var done = function () { copy.textContent = copy.getAttribute("data-copied") || copy.textContent; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  }
});
