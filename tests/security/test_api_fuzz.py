"""Schemathesis against the OpenAPI schema (/api/schema/), in-process through the WSGI app.

Authenticated with a token of a user who has accepted the consent and owns a
lesion with a photo, so the generated calls reach real code paths. For every
operation a bounded number of generated requests must get no 5xx, and every
response must match what the schema says (status, content type, body).
It is an ordinary pytest test: bin/test and .ci/run run it.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.throttling import SimpleRateThrottle
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import issue_api_token

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]

MAX_EXAMPLES = 15


def _load_schema():
    # Loaded at collection (pytest-django has configured Django by then); the schema view is
    # public and touches no database. schemathesis.pytest.from_fixture() does not work with pytest 9.
    from skinsite.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


schema = _load_schema()


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Calls go straight to the WSGI app, whose request_finished signal would close the database
    connection (and with it the test's transaction, on PostgreSQL). Django's test Client switches
    close_old_connections off around its requests in the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(user, submission_factory, monkeypatch):
    # The throttles are tested elsewhere; here they would only cut the run short.
    for scope in ("user", "anon", "uploads"):
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, "100000/hour")
    submission_factory()
    return issue_api_token(user)[1]


@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much])
def test_api_conforms_to_its_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
