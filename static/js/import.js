// The import page: a file over the limit is refused before it is sent (the server would refuse
// it too, after the whole upload); a background import's progress is polled until it is done,
// then the server's result page is shown.
(function () {
  "use strict";
  const form = document.querySelector(".import-form");
  const tooLarge = document.getElementById("import-too-large");
  if (form && tooLarge) {
    const limit = Number(form.dataset.maxBytes);
    form.addEventListener("submit", function (event) {
      const file = form.querySelector("input[type=file]").files[0];
      if (file && limit && file.size > limit) {
        event.preventDefault();
        tooLarge.textContent = "The file is larger than " + limit + " bytes (" + file.size + " given): nothing was sent.";
        tooLarge.hidden = false;
      }
    });
  }

  const box = document.getElementById("import-job");
  if (!box || ["done", "failed"].includes(box.dataset.status)) return;
  const bar = document.getElementById("import-bar");
  const done = document.getElementById("import-done");
  const status = document.getElementById("import-status");
  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const job = await response.json();
        bar.max = Math.max(job.conversations_total, 1);
        bar.value = job.conversations_done;
        done.textContent = job.conversations_done;
        status.textContent = job.status;
        if (job.status === "done" || job.status === "failed") {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // A network blip: try again on the next tick.
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 500);
})();
