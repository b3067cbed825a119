// A background import's progress: poll its job until it is done, then show the server's result page.
(function () {
  "use strict";
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
