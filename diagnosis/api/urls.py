"""API routes under /api/v1/ (namespace ``api``). Objects are addressed by UUID only."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import api as account_api

from . import bulk, schema, views  # noqa: F401 - schema registers the token scheme for the OpenAPI schema

app_name = "api"

# Path converters instead of regexes: a malformed UUID is a plain 404 before any view runs.
router = SimpleRouter(use_regex_path=False)
router.register("submissions", views.SubmissionViewSet, basename="submission")
router.register("lesions", views.LesionViewSet, basename="lesion")
router.register("batches", bulk.BatchViewSet, basename="batch")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("consent/", account_api.ConsentView.as_view(), name="consent"),
    path("export/", account_api.ExportView.as_view(), name="export"),
    *router.urls,
]
