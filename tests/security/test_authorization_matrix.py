"""Every route, every kind of caller: anonymous, the owner, another user, an admin.

The routes come from the URL resolver, so a new route without a row in ROUTES
fails ``test_every_route_has_an_expectation``: whoever adds a route decides who
may reach it. Another user's objects answer 404, exactly like ones that do not
exist (the owner-scoped selectors). Admin routes are checked separately: every
one of them refuses anonymous and non-staff callers.

Expectations are for GET. Status 302 for a web page means "to the login page"
(checked) unless noted; the writes (POSTs) have their own tests.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from ml.explain import overlay_png

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "owner", "other", "admin")

# name -> (kind of object in the URL, {role: status}).
# Kinds: None, "submission", "lesion", "batch", "reset", "condition", "explained" (a finished, assessed
# photo with a heatmap: a result that was not assessed shows none).
LOGIN, OK, NOT_FOUND, NOT_ALLOWED, UNAUTH, REDIRECT = 302, 200, 404, 405, 401, "redirect"
PRIVATE_OBJECT = {"anonymous": LOGIN, "owner": OK, "other": NOT_FOUND, "admin": NOT_FOUND}
LOGGED_IN_PAGE = {"anonymous": LOGIN, "owner": OK, "other": OK, "admin": OK}
PUBLIC = {"anonymous": OK, "owner": OK, "other": OK, "admin": OK}
POST_ONLY = {"anonymous": NOT_ALLOWED, "owner": NOT_ALLOWED, "other": NOT_ALLOWED, "admin": NOT_ALLOWED}
API_PRIVATE_OBJECT = {"anonymous": UNAUTH, "owner": OK, "other": NOT_FOUND, "admin": NOT_FOUND}
API_LOGGED_IN = {"anonymous": UNAUTH, "owner": OK, "other": OK, "admin": OK}

ROUTES = {
    # diagnosis (web)
    "diagnosis:home": (None, PUBLIC),
    "favicon": (None, {role: REDIRECT for role in ROLES}),  # to the static SVG
    # The admin has not accepted the consent: the upload page sends them to it first.
    "diagnosis:upload": (None, {**LOGGED_IN_PAGE, "admin": REDIRECT}),
    "diagnosis:submission-detail": ("submission", PRIVATE_OBJECT),
    "diagnosis:submission-status": ("submission", PRIVATE_OBJECT),
    "diagnosis:submission-photo": ("submission", PRIVATE_OBJECT),
    "diagnosis:submission-heatmap": ("explained", PRIVATE_OBJECT),
    "diagnosis:submission-look-anyway": ("submission", {**POST_ONLY, "anonymous": LOGIN}),
    "diagnosis:submission-delete": ("submission", PRIVATE_OBJECT),  # GET: the confirmation page
    "diagnosis:lesion-list": (None, LOGGED_IN_PAGE),
    "diagnosis:lesion-detail": ("lesion", PRIVATE_OBJECT),
    "diagnosis:lesion-delete": ("lesion", PRIVATE_OBJECT),
    "diagnosis:lesion-compare": ("lesion", PRIVATE_OBJECT),
    "diagnosis:lesion-report": ("lesion", PRIVATE_OBJECT),
    "diagnosis:lesion-report-pdf": ("lesion", PRIVATE_OBJECT),
    # accounts (web)
    "login": (None, PUBLIC),
    "logout": (None, POST_ONLY),
    "password_change": (None, LOGGED_IN_PAGE),
    "password_change_done": (None, LOGGED_IN_PAGE),
    "password_reset": (None, PUBLIC),
    "password_reset_done": (None, PUBLIC),
    "password_reset_confirm": ("reset", PUBLIC),  # a bogus link: the "invalid link" page
    "password_reset_complete": (None, PUBLIC),
    "signup": (None, {"anonymous": OK, "owner": REDIRECT, "other": REDIRECT, "admin": REDIRECT}),
    "signup-done": (None, PUBLIC),
    "signup-confirm": (None, {"anonymous": OK, "owner": REDIRECT, "other": REDIRECT, "admin": REDIRECT}),
    "profile": (None, LOGGED_IN_PAGE),
    "api-token": (None, POST_ONLY),
    "api-token-revoke": (None, POST_ONLY),
    "consent": (None, LOGGED_IN_PAGE),
    "export-data": (None, POST_ONLY),
    "delete-account": (None, LOGGED_IN_PAGE),  # GET: the confirmation page
    # API
    "api:auth-token": (None, POST_ONLY),
    "api:consent": (None, API_LOGGED_IN),
    "api:export": (None, API_LOGGED_IN),
    "api:submission-list": (None, API_LOGGED_IN),
    "api:submission-detail": ("submission", API_PRIVATE_OBJECT),
    "api:submission-image": ("submission", API_PRIVATE_OBJECT),
    "api:submission-heatmap": ("explained", API_PRIVATE_OBJECT),
    "api:submission-look-anyway": ("submission", {**POST_ONLY, "anonymous": UNAUTH}),
    "api:lesion-list": (None, API_LOGGED_IN),
    "api:lesion-detail": ("lesion", API_PRIVATE_OBJECT),
    "api:lesion-submissions": ("lesion", API_PRIVATE_OBJECT),
    "api:batch-list": (None, {**API_LOGGED_IN, "owner": NOT_ALLOWED, "other": NOT_ALLOWED, "admin": NOT_ALLOWED}),
    "api:batch-detail": ("batch", API_PRIVATE_OBJECT),
    "api:lesion-timeline": ("lesion", API_PRIVATE_OBJECT),
    "api:lesion-report": ("lesion", API_PRIVATE_OBJECT),
    # The schema and its docs page are public: they describe the API, not anyone's data.
    "api-schema": (None, PUBLIC),
    "api-docs": (None, PUBLIC),
    # guidance: general health information about conditions, no personal data.
    "guidance:condition-list": (None, PUBLIC),
    "guidance:condition-detail": ("condition", PUBLIC),
    "guidance:api-condition-list": (None, PUBLIC),
    "guidance:api-condition-detail": ("condition", PUBLIC),
    # The symptom assistant: the form is POST only (tests/guidance/test_assistant_pages.py); the API answers
    # the owner 409 here because this submission has no final result yet.
    "guidance:assistant-message": ("submission", {**POST_ONLY, "anonymous": LOGIN}),
    "guidance:api-assistant": ("submission", {**API_PRIVATE_OBJECT, "owner": 409}),
}


def iter_routes(patterns=None, namespace=""):
    """(namespace, full name or None, pattern) for every route the resolver knows."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else (
                entry.namespace or namespace)
            yield from iter_routes(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield namespace, name, entry


def is_admin(namespace):
    return namespace.split(":")[0] == "admin"


def user_routes():
    return {name for namespace, name, _pattern in iter_routes() if not is_admin(namespace)}


def test_every_route_has_an_expectation():
    routes = user_routes()
    assert None not in routes, "every non-admin route needs a name (so it can be listed here)"
    missing = routes - set(ROUTES)
    assert not missing, f"routes without a row in ROUTES (decide who may reach them): {sorted(missing)}"
    stale = set(ROUTES) - routes
    assert not stale, f"rows in ROUTES for routes that no longer exist: {sorted(stale)}"


@pytest.fixture
def callers(client, owner_client, outsider_client, admin_client):
    return {"anonymous": client, "owner": owner_client, "other": outsider_client, "admin": admin_client}


@pytest.fixture
def owned(submission_factory):
    submission = submission_factory()
    submission.batch = uuid.uuid4()  # also part of a bulk import, for the batch routes
    # ... and with a stored heatmap overlay, for the heatmap routes
    submission.heatmap.save("heatmap.png", ContentFile(overlay_png((4, 3), np.ones((3, 4)))), save=False)
    submission.save(update_fields=["batch", "heatmap"])
    explained = submission_factory(lesion=submission.lesion)
    explained.heatmap.save("heatmap.png", ContentFile(overlay_png((4, 3), np.ones((3, 4)))), save=False)
    explained.status = explained.Status.DONE
    explained.save(update_fields=["heatmap", "status"])
    submission.explained = explained
    return submission


def url_for(name, kind, submission):
    if kind == "submission":
        return reverse(name, args=[submission.uuid])
    if kind == "explained":
        return reverse(name, args=[submission.explained.uuid])
    if kind == "lesion":
        return reverse(name, args=[submission.lesion.uuid])
    if kind == "batch":
        return reverse(name, args=[submission.batch])
    if kind == "condition":
        return reverse(name, args=["mel"])
    if kind == "reset":
        return reverse(name, kwargs={"uidb64": "MQ", "token": "bogus-token"})
    return reverse(name)


@pytest.mark.parametrize("role", ROLES)
def test_route_answers_each_caller_as_expected(role, callers, owned):
    client = callers[role]
    failures = []
    for name, (kind, expected) in sorted(ROUTES.items()):
        url = url_for(name, kind, owned)
        response = client.get(url)
        want = expected[role]
        if want == REDIRECT:
            ok = response.status_code == 302
        elif want == LOGIN:
            ok = response.status_code == 302 and response["Location"].startswith(reverse("login"))
        else:
            ok = response.status_code == want
        if not ok:
            failures.append(f"{name} {url}: {response.status_code}, expected {want}")
    assert not failures, f"as {role}:\n" + "\n".join(failures)


# --- the admin site -----------------------------------------------------------------------------

# Admin routes that are not behind admin_view (staff only), and why.
ADMIN_OPEN = {
    "admin:login": 200,  # the form itself
    "admin:logout": 302,  # admin_view sends non-staff callers to the admin index (which wants a login)
}


def _admin_url(name, pattern, submission):
    fill = {"app_label": "diagnosis", "object_id": str(submission.pk), "content_type_id": "1", "id": "1",
            "uidb64": "MQ", "token": "x", "url": "x"}
    params = list(pattern.pattern.regex.groupindex)
    return reverse(name, kwargs={key: fill.get(key, "1") for key in params})


def admin_routes():
    # Unnamed admin routes: the old "<id>/" redirects to "<id>/change/" and the site's catch-all,
    # covered by the named change views and by test_admin_catch_all_refuses_anonymous.
    return [(name, pattern) for namespace, name, pattern in iter_routes() if is_admin(namespace) and name]


def test_admin_catch_all_refuses_anonymous(client):
    response = client.get("/admin/no-such-page/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_admin_routes_refuse_anonymous_and_non_staff(client, owner_client, owned):
    failures = []
    for name, pattern in admin_routes():
        url = _admin_url(name, pattern, owned)
        for who, caller in (("anonymous", client), ("owner", owner_client)):
            response = caller.get(url)
            if name in ADMIN_OPEN:
                ok = response.status_code == ADMIN_OPEN[name]
            else:
                ok = response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
            if not ok:
                failures.append(f"{name} {url} as {who}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_admin_index_and_every_changelist_open_for_admins(admin_client, owned):
    assert admin_client.get(reverse("admin:index")).status_code == 200
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, url


# --- writes by another user ---------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", [
    ("diagnosis:submission-delete", "submission"),
    ("diagnosis:lesion-delete", "lesion"),
])
def test_another_user_cannot_delete(outsider_client, owned, name, kind):
    from diagnosis.models import Submission

    assert outsider_client.post(url_for(name, kind, owned)).status_code == 404
    assert Submission.objects.filter(pk=owned.pk).exists()


@pytest.mark.parametrize("name,kind", [("api:submission-detail", "submission"), ("api:lesion-detail", "lesion")])
def test_another_user_cannot_delete_through_the_api(outsider_client, owned, name, kind):
    from diagnosis.models import Submission

    assert outsider_client.delete(url_for(name, kind, owned)).status_code == 404
    assert Submission.objects.filter(pk=owned.pk).exists()


def test_unknown_api_paths_answer_json_404_and_pages_html(owner_client):
    response = owner_client.get("/api/v1/submissions/not-a-uuid/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    response = owner_client.get("/lesions/not-a-uuid/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_pages_send_security_headers(owner_client, owned):
    for url in (reverse("diagnosis:home"), reverse("diagnosis:submission-detail", args=[owned.uuid]),
                reverse("api:submission-list")):
        response = owner_client.get(url)
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
