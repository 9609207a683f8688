// Swagger UI over this app's own schema; a file, not an inline script, so the page's CSP can forbid inline code.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null, // never send the schema to swagger.io's validator
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
