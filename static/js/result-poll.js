// The result page asks for the analysis' status until it is final, then reloads (issue 13: a file,
// not an inline script, so the Content-Security-Policy can refuse every inline script).
(function () {
  var box = document.getElementById("result");
  if (!box || (box.dataset.final === "true" && box.dataset.heatmapPending !== "true")) return;
  var delay = 1000;
  function poll() {
    fetch(box.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        document.getElementById("status").textContent = data.status_display;
        var changed = data.is_final !== (box.dataset.final === "true");
        if (data.is_final && (changed || !data.heatmap_pending)) { window.location.reload(); return; }
        delay = Math.min(delay * 1.3, 5000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, delay);
})();
