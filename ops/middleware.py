"""Answer /healthz and /metrics before any other middleware.

Probes and scrapers call a process by its internal address (``http://10.0.3.7:8000/healthz``),
with a Host header that ALLOWED_HOSTS rightly refuses and over plain HTTP that
SECURE_SSL_REDIRECT would redirect. Answering here, first in MIDDLEWARE, skips both without
loosening them for the site: these two responses build no URL from the Host header, /healthz
says nothing secret, and /metrics has its own access control (ops.metrics.may_scrape).
"""

from . import views

ROUTES = {"/healthz": views.healthz, "/metrics": views.metrics}


class OpsEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ROUTES.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
