// /docs: Swagger UI on the service's own /openapi.json. A file, not an inline script: the
// page's Content-Security-Policy (script-src 'self') runs no inline script.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // No validator badge: it would send the document to validator.swagger.io.
  validatorUrl: null,
});
