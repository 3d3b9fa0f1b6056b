// vpp: start Swagger UI on this API's OpenAPI document (see docs.html). A file of its own
// because the page's CSP allows no inline script. Sets <html data-state="rendered|error">
// for tests.
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default sends the whole spec to validator.swagger.io: a third party, and offline
    // a broken badge.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    onComplete: function () {
      document.documentElement.setAttribute("data-state", "rendered");
    },
  });
})();
