"""Condition pages and their read-only API, and the symptom assistant (page form and API); included once from
skinsite/urls.py (namespace ``guidance``)."""

from django.urls import path

from . import views
from .api import views as api_views

app_name = "guidance"

urlpatterns = [
    path("conditions/", views.condition_list, name="condition-list"),
    path("conditions/<slug:code>/", views.condition_detail, name="condition-detail"),
    path("api/v1/conditions/", api_views.ConditionListView.as_view(), name="api-condition-list"),
    path("api/v1/conditions/<slug:code>/", api_views.ConditionDetailView.as_view(), name="api-condition-detail"),
    # Under the submission's address, but served here: diagnosis.api's router has no such route.
    path("api/v1/submissions/<uuid:submission_uuid>/assistant/", api_views.AssistantView.as_view(),
         name="api-assistant"),
    path("submissions/<uuid:submission_uuid>/assistant/", views.assistant_message, name="assistant-message"),
]
