// Follows a running router job on its page: polls the job's JSON and reloads when it ends.
// A file, not an inline script, so the Content-Security-Policy allows scripts from 'self' only.
(function () {
  var box = document.getElementById("job");
  if (!box || box.dataset.done === "yes") return;
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (j) {
      document.getElementById("job-state").textContent = j.state;
      document.getElementById("job-progress").value = j.progress;
      document.getElementById("job-log").textContent = j.log;
      document.getElementById("job-message").textContent = j.message || "";
      if (j.done) { window.location.reload(); } else { setTimeout(poll, 1000); }
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
