// vpp: render a period's KPI dashboard (see reports.html). No data lives in the page: the
// spec is fetched with the bearer token from the URL fragment (#token=...), which browsers
// never send to a server. Sets <html data-state="rendered|error"> for tests.
(function () {
  "use strict";

  var statusEl = document.getElementById("status");
  var errorEl = document.getElementById("error");
  var query = new URLSearchParams(window.location.search);
  var token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  // Read once, then dropped from the address bar and the history entry.
  if (window.location.hash) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  // Relative to /ui/reports: works behind a path prefix too.
  var chartUrl = "../api/v1/reports/chart" + window.location.search;
  var usage = "Open this page as /ui/reports?start=<ISO time>&end=<ISO time>#token=<your API token>.";

  document.getElementById("period").textContent =
    (query.get("start") || "?") + " – " + (query.get("end") || "?");

  function setState(state) {
    document.documentElement.setAttribute("data-state", state);
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = false;
    setState("error");
  }

  function explain(status, body) {
    var detail = body && body.detail ? body.detail : "";
    var fields = body && body.errors ? body.errors.map(function (e) {
      return (e.field || e.loc || "") + ": " + (e.message || e.msg || "");
    }).join("; ") : "";
    switch (status) {
      case 401:
        return "Not signed in (401): " + (detail || "the token was refused") + ".\n" + usage;
      case 403:
        return "Not allowed (403): " + detail;
      case 422:
        return "The period was refused (422): " + (fields || detail) + ".\n" + usage;
      default:
        return "The report could not be loaded (" + status + ")" + (detail ? ": " + detail : ".");
    }
  }

  function render(spec) {
    var meta = spec.usermeta || {};
    var savings = meta.savings || {};
    statusEl.textContent = meta.sites + " site(s) · savings " + savings.value + " " +
      savings.unit;
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
      statusEl.textContent = "no token";
      showError("No token: " + usage);
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
        if (got.response.ok && got.body) return render(got.body);
        statusEl.textContent = "no report";
        showError(explain(got.response.status, got.body));
      })
      .catch(function (err) {
        statusEl.textContent = "no report";
        showError("The report could not be loaded: " + (err && err.message ? err.message : err));
      });
  }

  load();
})();
