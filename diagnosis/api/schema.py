"""Document the error answers every API client can get (drf-spectacular postprocessing hook).

drf-spectacular documents the success responses; the errors come from DRF and our
settings and are the same everywhere: 400 (invalid input), 401 (no or bad
credentials), 403 (not allowed, e.g. consent not accepted), 404 (no such object
for you, an invalid page, an unknown format), 413 (request too large) and 429
(throttled). Schemathesis (tests/security/test_api_fuzz.py) holds the API to them.
"""

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "Field name (or non_field_errors) to a list of messages.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
DESCRIPTIONS = {
    "400": "Invalid input",
    "401": "No or invalid credentials",
    "403": "Not allowed (for uploads: the current consent is not accepted)",
    "404": "Not found: no such object for you, an invalid page number or an unknown format",
    "413": "Request too large",
    "429": "Too many requests; see Retry-After",
}


def _response(code, content_types):
    if code == "400":  # field errors, or {"detail": ...} for a body that cannot be parsed
        schema = {"anyOf": [{"$ref": "#/components/schemas/ValidationError"}, {"$ref": "#/components/schemas/Error"}]}
    else:
        schema = {"$ref": "#/components/schemas/Error"}
    return {"description": DESCRIPTIONS[code], "content": {ct: {"schema": schema} for ct in content_types}}


def add_error_responses(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR)
    components.setdefault("ValidationError", VALIDATION_ERROR)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = ["401", "403", "429"] if operation.get("security") != [{}] else ["429"]
            if any(True for _ in operation.get("parameters", [])) or "{" in path:
                codes.append("404")
            if "requestBody" in operation or method in ("post", "put", "patch"):
                codes += ["400", "413"]
            for code in codes:
                if code not in responses:
                    responses[code] = _response(code, ["application/json"])
    return result
