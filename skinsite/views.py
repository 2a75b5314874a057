"""Site-wide error views."""

from django.http import JsonResponse
from django.views.defaults import page_not_found


def not_found(request, exception):
    """API clients get JSON (as DRF's own 404s), people get the usual page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
