"""Site-wide views: errors and the favicon."""

from django.http import JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.defaults import page_not_found


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page links: send them to the static SVG."""
    return redirect(static("favicon.svg"))


def not_found(request, exception):
    """API clients get JSON (as DRF's own 404s), people get the usual page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
