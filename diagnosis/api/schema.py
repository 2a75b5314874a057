"""The OpenAPI schema's shared parts: the error answers every API client can get, and the token scheme.

drf-spectacular documents the success responses; the errors come from DRF and our settings and
have one of two bodies everywhere: ``{"detail": "..."}`` (``Error``), or for invalid input a field
name (or ``non_field_errors``) to a list of messages (``ValidationError``). ``add_error_responses``
(a postprocessing hook, see SPECTACULAR_SETTINGS) is the one place that gives them their bodies:

- it adds the statuses an operation can always get (see ``_codes``): 400, 401, 403, 404, 413, 415
  and 429, with the ``Retry-After`` header on 429;
- a view only names the statuses special to it, with a description and no body, for example
  ``409: OpenApiResponse(description="No final result yet.")``, and the hook adds the body.

Schemathesis (tests/security/test_api_fuzz.py) holds the API to it, and the generated client
(tests/integration/test_generated_client.py) parses the error answers with these bodies.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR = {
    "type": "object",
    "description": "An error with one message.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "Invalid input: a field name (or non_field_errors) to a list of messages.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
DESCRIPTIONS = {
    "400": "Invalid input (field errors), or a body that cannot be parsed",
    "401": "No or invalid credentials",
    "403": "Not allowed: for uploads, the current consent is not accepted; for a session, no CSRF token",
    "404": "Not found: no such object for you, an invalid page number or an unknown format",
    "409": "Conflict with the object's state",
    "413": "Request too large",
    "415": "Unsupported body media type: send the one documented for the operation",
    "429": "Too many requests; wait Retry-After seconds",
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Error first: a {"detail": ...} body parses as Error, and only field errors fall through to ValidationError.
INVALID_INPUT = {"anyOf": [ERROR_REF, {"$ref": "#/components/schemas/ValidationError"}]}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer"}}}


class TokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Token <key>`` for our token authentication (whatever token model it checks)."""

    target_class = "accounts.authentication.AuditedTokenAuthentication"
    match_subclasses = True
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'Token-based authentication with required prefix "Token"'}


def _codes(path, method, operation):
    """The error statuses any operation like this one can answer, whatever its view says."""
    open_to_all = not operation.get("security")  # the token endpoint (conditions also take tokens)
    codes = ["401", "429"]  # 401 for a bad Authorization header even where none is needed
    if not open_to_all and method not in ("get", "head", "options"):
        codes.append("403")  # consent (uploads), CSRF (session)
    if "{" in path or operation.get("parameters"):
        codes.append("404")  # not yours / none, an invalid page, an unknown ?format
    if "requestBody" in operation or method in ("post", "put", "patch"):
        codes += ["400", "413"]
    if "requestBody" in operation:
        codes.append("415")
    return codes


def _error_response(code, description=None):
    response = {"description": description or DESCRIPTIONS.get(code, "Error"),
                "content": {"application/json": {"schema": INVALID_INPUT if code == "400" else ERROR_REF}}}
    if code == "429":
        response["headers"] = RETRY_AFTER
    return response


def _null_as_type(node):
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            del node["nullable"]
            node["type"] = [node["type"], "null"]
        for value in node.values():
            _null_as_type(value)
    elif isinstance(node, list):
        for value in node:
            _null_as_type(value)


def null_as_type(result, generator, request, public):
    """OAS 3.1 has no ``nullable``: DRF's pagination schema still says ``nullable: true`` for
    ``next`` and ``previous``, which a 3.1 validator ignores, and it then refuses the last page's null.
    drf-spectacular writes its own fields the 3.1 way (``type: [string, "null"]``, ``oneOf`` with null)."""
    if result.get("openapi", "").startswith("3.1"):
        _null_as_type(result)
    return result


def add_error_responses(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR)
    components.setdefault("ValidationError", VALIDATION_ERROR)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            # "security: []" says outright that no credentials are needed (drf-spectacular leaves it out).
            operation.setdefault("security", [])
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method, operation):
                responses.setdefault(code, {})
            for code, response in responses.items():
                if code.startswith("4") and not response.get("content"):
                    responses[code] = _error_response(code, response.get("description"))
            operation["responses"] = dict(sorted(responses.items()))
    return result
