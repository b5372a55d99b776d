// The console's own script (the CSP allows no inline script): buttons that print the page.
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) { window.print(); }
});
