"""Issue 13 M2: no response that carries health data may be cached (``Cache-Control: private, no-store``).

Walks every route of the URL conf (the authorization matrix's table, which fails when a route is
added without a row) as the owner, by session and by API token, and checks the header on each
answer; anonymous public pages stay cacheable.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import issue_api_token
from tests.security.test_authorization_matrix import ROUTES, owned, url_for  # noqa: F401 - owned: a fixture

pytestmark = pytest.mark.django_db


def _private(response) -> bool:
    value = response.get("Cache-Control", "")
    return "private" in value and "no-store" in value


def test_every_route_answers_the_signed_in_owner_with_private_no_store(owner_client, owned):  # noqa: F811
    missing = []
    for name, (kind, _expected) in sorted(ROUTES.items()):
        response = owner_client.get(url_for(name, kind, owned))
        if not _private(response):
            missing.append(f"{name}: {response.status_code} {response.get('Cache-Control')!r}")
    assert not missing, "cacheable answers to a signed-in owner:\n" + "\n".join(missing)


def test_every_api_route_answers_a_token_with_private_no_store(user, owned):  # noqa: F811
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user)[1]}")
    missing = []
    for name, (kind, _expected) in sorted(ROUTES.items()):
        if not name.startswith(("api:", "guidance:api-")):
            continue
        response = api.get(url_for(name, kind, owned))
        if not _private(response):
            missing.append(f"{name}: {response.status_code} {response.get('Cache-Control')!r}")
    assert not missing, "cacheable answers to an API token:\n" + "\n".join(missing)


def test_health_data_pages_named_in_the_issue_are_private(owner_client, owned):  # noqa: F811
    for url in (reverse("diagnosis:submission-detail", args=[owned.uuid]),
                reverse("diagnosis:lesion-detail", args=[owned.lesion.uuid]),
                reverse("diagnosis:lesion-compare", args=[owned.lesion.uuid]),
                reverse("diagnosis:upload"), reverse("api:submission-detail", args=[owned.uuid]),
                reverse("guidance:api-assistant", args=[owned.uuid]), reverse("api:consent")):
        assert owner_client.get(url)["Cache-Control"] == "private, no-store", url


def test_anonymous_public_pages_stay_cacheable(client):
    for name in ("diagnosis:home", "guidance:condition-list", "guidance:condition-detail"):
        url = reverse(name, args=["mel"]) if name.endswith("detail") else reverse(name)
        assert "no-store" not in client.get(url).get("Cache-Control", ""), name
