// tabserve's Swagger UI set-up. A file rather than an inline script so that a strict
// Content-Security-Policy (script-src 'self') still allows it.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The default validator badge calls validator.swagger.io: the page must work offline.
    validatorUrl: null,
  });
});
