"""The OpenAPI schema is valid and complete, and the docs page works offline."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_schema_generation_passes_validation_without_warnings(tmp_path):
    # Fails on any drf-spectacular warning (e.g. a field it cannot infer) as well as on an invalid schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


@pytest.fixture
def schema(client):
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_endpoint_returns_openapi(schema):
    from drf_spectacular.validation import validate_schema

    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) >= {
        "/api/v1/auth/token/",
        "/api/v1/submissions/",
        "/api/v1/submissions/{uuid}/",
        "/api/v1/submissions/{uuid}/image/",
        "/api/v1/lesions/",
        "/api/v1/lesions/{uuid}/",
        "/api/v1/lesions/{uuid}/submissions/",
    }
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_schema_documents_the_multipart_upload(schema):
    body = schema["paths"]["/api/v1/submissions/"]["post"]["requestBody"]["content"]
    assert list(body) == ["multipart/form-data"]
    ref = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    upload = schema["components"]["schemas"][ref]
    assert upload["properties"]["image"] == {"type": "string", "format": "binary",
                                             "description": upload["properties"]["image"]["description"]}
    assert upload["required"] == ["image"]


def test_schema_documents_the_photo_as_binary_jpeg(schema):
    responses = schema["paths"]["/api/v1/submissions/{uuid}/image/"]["get"]["responses"]
    assert responses["200"]["content"]["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}


def test_schema_exposes_uuids_not_integer_ids(schema):
    for path, item in schema["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and not path.startswith("/api/v1/conditions/"):
                    assert parameter["schema"].get("format") == "uuid", (path, parameter)
                elif parameter["in"] == "path":  # a condition's class code (public reference data), never an int
                    assert parameter["schema"]["type"] == "string" and "pattern" in parameter["schema"], parameter
    for name, component in schema["components"]["schemas"].items():
        assert "id" not in component.get("properties", {}), name


def test_history_is_documented_as_paginated(schema):
    ok = schema["paths"]["/api/v1/lesions/{uuid}/submissions/"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/PaginatedLesionHistoryItemList")


def test_docs_page_renders_with_local_assets_only(client):
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    # No CDN at run time: every script, stylesheet and icon comes from our own static files.
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", html), "docs page references an external URL"
    assert "cdn." not in html and "jsdelivr" not in html and "unpkg" not in html
    assets = re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", html)
    static_assets = [a for a in assets if a.startswith("/static/")]
    assert static_assets, assets
    for asset in static_assets:
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a bundled static file"


# The API contract as a generated client relies on it (tests/integration/test_generated_client.py runs one).

UPLOADS = {"/api/v1/submissions/", "/api/v1/batches/"}


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/v1/"):
                yield path, method, operation


def test_every_request_body_has_one_media_type_json_unless_a_photo_upload(schema):
    bodies = {(path, method): list(op["requestBody"]["content"]) for path, method, op in _operations(schema)
              if "requestBody" in op}
    assert len(bodies) >= 6, bodies  # token, consent, lesion, upload, batch, assistant
    for (path, method), media_types in bodies.items():
        assert media_types == ["multipart/form-data" if path in UPLOADS else "application/json"], (path, method)


def test_json_views_take_json_only(owner_client, user, password, submission):
    from tests.diagnosis.test_api_submissions import detail_url

    for url, body in [(reverse("api:consent"), {"accept": True}), (reverse("api:lesion-list"), {"name": "arm"}),
                      (detail_url(submission) + "assistant/", {"message": "yes"})]:
        multipart = owner_client.post(url, body)  # the test client's default
        form = owner_client.post(url, "accept=true", content_type="application/x-www-form-urlencoded")
        for response in (multipart, form):
            assert response.status_code == 415, (url, response.content)
            assert set(response.json()) == {"detail"}
    # The token endpoint takes JSON, and a form too (curl -d), as its description says.
    url = reverse("api:auth-token")
    credentials = {"username": user.username, "password": password}
    assert owner_client.post(url, credentials, content_type="application/json").status_code == 200
    assert owner_client.post(url, credentials).status_code == 200


def test_token_endpoint_is_documented_as_needing_no_credentials(schema):
    for path, method, operation in _operations(schema):
        if path == "/api/v1/auth/token/":
            assert operation["security"] == [], operation["security"]
        elif path.startswith("/api/v1/conditions/"):  # public, but a token is checked if one is sent
            assert {} in operation["security"]
        else:
            assert {"tokenAuth": []} in operation["security"] and {} not in operation["security"], (path, method)


def test_every_error_status_is_documented_with_its_body(schema):
    error, invalid = {"$ref": "#/components/schemas/Error"}, schema["components"]["schemas"]["ValidationError"]
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]
    assert invalid["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
    documented = {}
    for path, method, operation in _operations(schema):
        errors = {code: response for code, response in operation["responses"].items() if code.startswith("4")}
        documented[f"{method.upper()} {path}"] = set(errors)
        for code, response in errors.items():
            body = response["content"]["application/json"]["schema"]
            assert body == error or (code == "400" and error in body["anyOf"]), (path, method, code)
            assert response["description"], (path, method, code)
        assert {"401", "429"} <= set(errors), (path, method)
        assert "Retry-After" in errors["429"]["headers"]
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(errors), (path, method)
        if "{" in path:
            assert "404" in errors, (path, method)
        if method == "post" and path != "/api/v1/auth/token/":
            assert "403" in errors, (path, method)
    assert {"409"} <= documented["POST /api/v1/submissions/{uuid}/look-anyway/"]
    assert {"409"} <= documented["GET /api/v1/submissions/{submission_uuid}/assistant/"]
    assert {"409"} <= documented["POST /api/v1/submissions/{submission_uuid}/assistant/"]


def test_errors_of_the_file_endpoints_are_json_as_documented(outsider_client, submission):
    from tests.diagnosis.test_api_submissions import image_url

    for accept in ("image/jpeg", "application/json", "*/*"):
        response = outsider_client.get(image_url(submission), HTTP_ACCEPT=accept)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", accept
        assert set(response.json()) == {"detail"}
    response = outsider_client.get(reverse("api:lesion-report", args=[submission.lesion.uuid]) + "?format=pdf")
    assert response.status_code == 404 and set(response.json()) == {"detail"}


def test_a_queued_submission_validates_against_the_schema(schema, owner_client, submission):
    """``guidance`` is null until the result is final: a nullable reference, which OAS 3.0.3 could not say
    (``allOf: [$ref], nullable: true`` admits no null); OAS 3.1 says it as ``oneOf: [$ref, null]``."""
    from jsonschema import Draft202012Validator

    from tests.diagnosis.test_api_submissions import detail_url

    body = owner_client.get(detail_url(submission)).json()
    assert body["status"] == "queued" and body["guidance"] is None and body["heatmap_url"] is None
    page = owner_client.get(reverse("api:submission-list")).json()
    assert page["next"] is None and page["previous"] is None
    for component, instance in [("Submission", body), ("PaginatedSubmissionList", page)]:
        validator = Draft202012Validator({"$ref": f"#/components/schemas/{component}",
                                          "components": schema["components"]})
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
        assert not errors, (component, errors)
    assert schema["openapi"].startswith("3.1")
    assert "nullable" not in str(schema), "OAS 3.1 has no nullable keyword: a 3.1 validator ignores it"
