// Ask before sending a form marked data-confirm="Question?". A script file rather than an inline
// onsubmit handler: the Content-Security-Policy runs no inline script.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    const question = event.target instanceof HTMLFormElement ? event.target.dataset.confirm : null;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
