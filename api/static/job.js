// vpp: render one scheduling job's chart (see job.html). No data lives in the page: the spec
// is fetched with the bearer token from the URL fragment (#token=...), which browsers never
// send to a server. Sets <html data-state="rendered|waiting|error"> for tests.
(function () {
  "use strict";

  var POLL_MS = 3000;
  var statusEl = document.getElementById("status");
  var errorEl = document.getElementById("error");
  var parts = window.location.pathname.split("/").filter(Boolean);
  var jobId = decodeURIComponent(parts[parts.length - 1] || "");
  var token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  // Read once, then dropped from the address bar and the history entry (no token left to
  // copy, bookmark or find in the history); polling keeps it in this closure only.
  if (window.location.hash) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  // Relative to /ui/jobs/<id>: works behind a path prefix too.
  var chartUrl = "../../api/v1/scheduling-job/" + encodeURIComponent(jobId) + "/chart";

  document.getElementById("job-id").textContent = jobId;
  document.title = "vpp · job " + jobId;

  function setState(state) {
    document.documentElement.setAttribute("data-state", state);
  }

  function setStatus(text) {
    statusEl.textContent = text;
  }

  function showMessage(text, kind) {
    errorEl.textContent = text;
    errorEl.className = kind === "info" ? "info" : "";
    errorEl.hidden = false;
    setState(kind === "info" ? "waiting" : "error");
  }

  // "(iterating, iteration 7 of 100)": the job's phase and the server's own iteration cap
  function describeProgress(progress) {
    if (!progress) return "";
    var parts = [];
    if (progress.phase) parts.push(progress.phase);
    if (progress.iteration !== undefined) {
      var cap = progress["max-iterations"];
      parts.push("iteration " + progress.iteration + (cap !== undefined ? " of " + cap : ""));
    }
    return parts.length ? " (" + parts.join(", ") + ")" : "";
  }

  function explain(status, body) {
    var detail = body && body.detail ? body.detail : "";
    switch (status) {
      case 401:
        return "Not signed in (401): " + (detail || "the token was refused") +
          ".\nOpen this page as /ui/jobs/<job id>#token=<your API token>.";
      case 403:
        return "Not allowed (403): " + detail;
      case 404:
        return "No such job (404): " + (detail || jobId) +
          ".\nThe job does not exist, or your account cannot see it.";
      default:
        return "The chart could not be loaded (" + status + ")" + (detail ? ": " + detail : ".");
    }
  }

  function render(spec) {
    var meta = spec.usermeta || {};
    setStatus("status: " + (meta.status || "finished") + " · " + (meta.kind || "") + " job" +
      (meta.finished ? " · finished " + meta.finished : ""));
    errorEl.hidden = true;
    return vegaEmbed("#chart", spec, {
      renderer: "svg",
      ast: true, // expressions by vega-interpreter: no eval, so a strict CSP holds
      actions: { export: true, source: false, compiled: false, editor: false },
    }).then(function () {
      setState("rendered");
    });
  }

  function load() {
    if (!token) {
      setStatus("no token");
      showMessage("No token: open this page as /ui/jobs/<job id>#token=<your API token>.");
      return;
    }
    fetch(chartUrl, {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    })
      .then(function (response) {
        return response.json().then(
          function (body) { return { response: response, body: body }; },
          function () { return { response: response, body: null }; }
        );
      })
      .then(function (got) {
        var response = got.response;
        var body = got.body;
        if (response.ok && body) return render(body);
        if (response.status === 409 && body) {
          var jobStatus = body["job-status"] || "not finished";
          setStatus("status: " + jobStatus + describeProgress(body.progress));
          if (jobStatus === "queued" || jobStatus === "running") {
            showMessage("The job is " + jobStatus + "; the chart appears when it has finished.",
              "info");
            window.setTimeout(load, POLL_MS);
          } else if (jobStatus === "failed") {
            var err = body["job-error"] || {};
            showMessage("The job failed: " + (err.detail || err.title || "no chart") + ".");
          } else {
            showMessage("No chart (409): " + (body.detail || "the job is " + jobStatus) + ".");
          }
          return;
        }
        setStatus("status: unknown");
        showMessage(explain(response.status, body));
      })
      .catch(function (err) {
        setStatus("status: unknown");
        showMessage("The chart could not be loaded: " + (err && err.message ? err.message : err));
      });
  }

  load();
})();
