// Conveniences only: the report reads fully without this script.
(function () {
  "use strict";
  // Open the drill-down a link points at (and the details around it).
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var node = id && document.getElementById(id);
    while (node) {
      if (node.tagName === "DETAILS") { node.open = true; }
      node = node.parentElement;
    }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
  // Expand or collapse every matrix cell at once.
  var bar = document.querySelector("[data-expand-bar]");
  if (bar) {
    [["Expand all cells", true], ["Collapse all", false]].forEach(function (pair) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = pair[0];
      button.addEventListener("click", function () {
        document.querySelectorAll("details.cd").forEach(function (d) { d.open = pair[1]; });
      });
      bar.appendChild(button);
    });
  }
})();
