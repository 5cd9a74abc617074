// Starts Swagger UI on /docs (a file, not an inline script: the Content-Security-Policy forbids those).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    oauth2RedirectUrl: location.origin + "/docs-assets/oauth2-redirect.html",
  });
});
