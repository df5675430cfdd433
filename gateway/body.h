/* body: a /predict request body to Predictor features, validated against the served model's
 * schema the way FastAPI and pydantic v2 would, with every problem in one 422 "detail" list:
 * [{"type", "loc", "msg", "input"[, "ctx"]}]. */
#ifndef CREDITO_BODY_H
#define CREDITO_BODY_H

#include <stddef.h>

#include <jansson.h>

#include "arena.h"
#include "credito/v1/common.pb-c.h"

/* Largest "input" echoed back in an error, in bytes of JSON text; longer inputs are cut. */
#define BODY_ECHO_MAX 256

/* Most entries in one 422 "detail" list (the predictor caps its BadRequest the same way). */
#define BODY_MAX_ERRORS 100

/* Parses text (len bytes, borrowed) as JSON. On success returns the value (caller decrefs). On
 * malformed JSON returns NULL and *detail gets FastAPI's json_invalid entry with the byte
 * position: [{"type": "json_invalid", "loc": ["body", POS], "msg": "JSON decode error",
 * "input": {}, "ctx": {"error": "..."}}] (caller decrefs). Duplicate keys are malformed. */
json_t *body_parse(const char *text, size_t len, json_t **detail);

/* Validates one applicant object against schema (borrowed) and converts it into features in a:
 * *out receives *n Feature pointers (numbers for numeric features, texts for categorical ones,
 * explicit missing for a JSON null on an optional feature). loc_prefix (borrowed, a JSON array
 * such as ["body"] or ["body", 3]) starts every loc. Returns 0; or CM_E_INVALID with the
 * problems appended to detail (a JSON array, borrowed; at most BODY_MAX_ERRORS entries in all,
 * also across calls); CM_E_NOMEM. Rules (pydantic v2 names):
 * not an object -> model_attributes_type; a required feature absent or null -> missing; a name
 * the schema does not have -> extra_forbidden; numeric: a bool, object or array -> float_type, a
 * string -> float_parsing; categorical: not a string -> string_type, a string outside the
 * categories under the reject policy -> enum. */
int body_applicant(const json_t *obj, const Credito__V1__Schema *schema, const json_t *loc_prefix,
                   cm_arena *a, Credito__V1__Feature ***out, size_t *n, json_t *detail);

/* The common case without building a JSON tree: text is one flat object whose every key is a
 * schema feature (each once), whose values are plain numbers, plain strings (no escapes, ASCII)
 * or null, and that passes every rule above. Then returns 0 with *out and *n exactly as
 * body_parse + body_applicant would give them (the same features in the same order, the same
 * values). Anything else returns CM_E_INVALID at once, without a detail: the caller takes the
 * full path, which says what is wrong. CM_E_NOMEM. */
int body_applicant_fast(const char *text, size_t len, const Credito__V1__Schema *schema,
                        cm_arena *a, Credito__V1__Feature ***out, size_t *n);

#endif
