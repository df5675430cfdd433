/* openapi: the gateway's OpenAPI 3.1 description (every route, body and error) and the Swagger
 * UI page that reads it, as FastAPI serves them. */
#include <string.h>

#include "gw.h"

static json_t *error_schema(void)
{
  return json_pack(
      "{s:s, s:{s:{s:s, s:{s:{s:s}, s:{s:s, s:{s:[{s:s},{s:s}]}}, s:{s:s}, s:{}}}}}",
      "type", "object", "properties", "detail", "type", "array", "items", "type", "object",
      "properties", "type", "type", "string", "loc", "type", "array", "items", "anyOf", "type",
      "string", "type", "integer", "msg", "type", "string", "input");
}

static json_t *detail_schema(void)
{
  return json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "detail", "type",
                   "string");
}

static json_t *json_content(json_t *schema)
{
  return json_pack("{s:{s:o}}", "application/json", "schema", schema);
}

/* The error responses every protected route can give. */
static json_t *errors(bool body)
{
  json_t *e = json_pack(
      "{s:{s:s, s:o}, s:{s:s, s:o}, s:{s:s, s:o}, s:{s:s, s:o}}", "401", "description",
      "Missing or wrong x-api-key (WWW-Authenticate: APIKey)", "content",
      json_content(detail_schema()), "429", "description",
      "Rate limit exceeded (Retry-After, X-RateLimit-Limit/Remaining/Reset)", "content",
      json_content(detail_schema()), "503", "description", "No predictor answers, or none "
      "serves a model", "content", json_content(detail_schema()), "504", "description",
      "The predictor did not answer in time", "content", json_content(detail_schema()));
  if (body) {
    json_object_set_new(e, "413", json_pack("{s:s, s:o}", "description", "Body over the cap",
                                            "content", json_content(detail_schema())));
    json_object_set_new(e, "415", json_pack("{s:s, s:o}", "description",
                                            "Content-Type is not application/json", "content",
                                            json_content(detail_schema())));
    json_object_set_new(e, "422", json_pack("{s:s, s:o}", "description",
                                            "Validation error: every bad field at once",
                                            "content", json_content(error_schema())));
  }
  return e;
}

static json_t *prediction_schema(void)
{
  return json_pack(
      "{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s, s:[s,s]}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, "
      "s:{s:s}}}}, s:{s:s}, s:{s:s}}}",
      "type", "object", "properties", "probability", "type", "number", "score", "type", "number",
      "decision", "type", "string", "enum", "approve", "decline", "reasons", "type", "array",
      "items", "type", "object", "properties", "feature", "type", "string", "impact", "type",
      "number", "text", "type", "string", "request_id", "type", "string", "model", "type",
      "object");
}

static json_t *post(const char *summary, json_t *request, json_t *response)
{
  json_t *resp = errors(true);
  json_object_set_new(resp, "200", json_pack("{s:s, s:o}", "description", "Scored",
                                             "content", json_content(response)));
  return json_pack("{s:{s:s, s:[{s:[]}], s:{s:b, s:o}, s:o}}", "post", "summary", summary,
                   "security", "APIKeyHeader", "requestBody", "required", 1, "content",
                   json_content(request), "responses", resp);
}

static json_t *get(const char *summary, bool secured, const char *content_type)
{
  json_t *resp = secured ? errors(false) : json_object();
  json_object_set_new(resp, "200", json_pack("{s:s, s:{s:{}}}", "description", "OK", "content",
                                             content_type));
  return json_pack("{s:{s:s, s:o, s:o}}", "get", "summary", summary, "security",
                   secured ? json_pack("[{s:[]}]", "APIKeyHeader") : json_array(), "responses",
                   resp);
}

void gw_openapi(struct gw_resp *r)
{
  json_t *applicant = json_pack("{s:s, s:s, s:{s:[s,s,s]}}", "type", "object", "description",
                                "Feature name to value, flat; GET /v1/model lists the features "
                                "with their kinds and categories", "additionalProperties",
                                "type", "number", "string", "null");
  json_t *paths = json_pack(
      "{s:o, s:o, s:o, s:o, s:o, s:o}", "/predict",
      post("Score one applicant", json_deep_copy(applicant), prediction_schema()),
      "/predict/batch",
      post("Score a list of applicants", json_pack("{s:s, s:O}", "type", "array", "items",
                                                   applicant),
           json_pack("{s:s}", "type", "object")),
      "/v1/model", get("The served model: schema, metrics, version", true, "application/json"),
      "/healthz", get("The gateway is alive", false, "application/json"), "/readyz",
      get("A predictor answers and serves a model (503 otherwise)", false, "application/json"),
      "/metrics", get("Prometheus metrics", false, "text/plain"));
  json_decref(applicant);
  r->status = 200;
  r->json = json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:{s:{s:s, s:s, s:s}}}}", "openapi",
                      "3.1.0", "info", "title", "Credito gateway", "version", "1", "description",
                      "Credit scoring: the champion model's probability of default, score, "
                      "decision and reasons.", "paths", paths, "components", "securitySchemes",
                      "APIKeyHeader", "type", "apiKey", "in", "header", "name", "x-api-key");
}

void gw_docs(struct gw_resp *r)
{
  static const char page[] =
      "<!DOCTYPE html>\n<html><head><title>Credito gateway - Swagger UI</title>\n"
      "<link rel=\"stylesheet\" "
      "href=\"https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css\">\n</head><body>\n"
      "<div id=\"swagger-ui\"></div>\n"
      "<script src=\"https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js\">"
      "</script>\n<script>SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});"
      "</script>\n</body></html>\n";
  r->status = 200;
  r->content_type = "text/html; charset=utf-8";
  cm_buf_add(&r->text, page, strlen(page));
}
