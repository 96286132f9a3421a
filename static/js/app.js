// Starts the GOV.UK Frontend components found by their data-module attributes (error summary focus,
// skip link, service navigation menu, checkboxes, radios, notification banners, buttons…).
// Loaded as <script type="module">: govuk-frontend 5's compiled file is an ES module.
import { initAll } from "../vendor/govuk-frontend/govuk-frontend.min.js";

initAll();

// htmx announces each piece of content it swaps in with htmx:load; start the components inside it.
// It also fires once for <body> on page load, which initAll() above has already covered.
document.addEventListener("htmx:load", (event) => {
  if (event.target !== document.body) {
    initAll(event.target);
  }
});
