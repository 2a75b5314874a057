"""Top-level routes. There is deliberately no media route: photos go through owner-checking views."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/v1/", include("diagnosis.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("guidance.urls")),  # /conditions/ pages and /api/v1/conditions/
    path("", include("diagnosis.urls")),
]

handler404 = "skinsite.views.not_found"
