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

// Forms with parts per choice (the automation editor's trigger and action kinds): a select with
// data-switch="x" shows, within its data-switch-scope, only the [data-x] parts naming the chosen value.
// Without script every part shows; the server ignores the parts of other choices.
function syncSwitch(select) {
  var scope = select.closest("[data-switch-scope]");
  var attr = "data-" + select.getAttribute("data-switch");
  if (!scope) { return; }
  scope.querySelectorAll("[" + attr + "]").forEach(function (part) {
    if (part.closest("[data-switch-scope]") !== scope) { return; }
    part.hidden = part.getAttribute(attr).split(" ").indexOf(select.value) < 0;
  });
}
document.addEventListener("change", function (event) {
  if (event.target.matches && event.target.matches("select[data-switch]")) { syncSwitch(event.target); }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-switch]").forEach(syncSwitch);
});
