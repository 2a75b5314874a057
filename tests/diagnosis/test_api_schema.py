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
