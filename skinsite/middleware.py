"""Refuse oversized requests before their body is read.

Django limits the non-file part of a body (DATA_UPLOAD_MAX_MEMORY_SIZE) but
streams uploaded files of any size to a temporary file. The proxy in front
(deploy/nginx.conf, client_max_body_size) is the first limit; this is the
second, for deployments without it, and the form/serializer's MAX_UPLOAD_BYTES
is the third.
"""

from django.conf import settings
from django.http import HttpResponse, JsonResponse


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_REQUEST_BYTES
        if length > limit:
            message = f"The request is too large: the limit is {limit // (1024 * 1024)} MB."
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


# Scripts, styles, images and requests from this site only, and no framing, no plugins, no
# foreign form targets. No inline script runs (issue 13): the result page's polling is a static
# file and the API docs page is drf-spectacular's split view (its start-up script is a URL of its
# own). 'unsafe-inline' stays for styles only: the templates' <style> blocks and style attributes.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


PRIVATE = "private, no-store"


class PrivateResponsesMiddleware:
    """``Cache-Control: private, no-store`` on every response to a signed-in caller, in one place.

    Health data (results, lesions, the assistant, consent, the API's JSON) is only ever sent to a
    signed-in person or a token, so that is the rule: a session user, or a request with an
    ``Authorization`` header (DRF tokens authenticate inside the view, after this has run). A
    shared cache or the browser's back-forward cache must not keep it. A response that chose its
    own Cache-Control (static files, the admin's never_cache) keeps it; anonymous pages (home,
    conditions, log-in, the schema) stay cacheable.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" not in response and self.is_private(request):
            response["Cache-Control"] = PRIVATE
        return response

    @staticmethod
    def is_private(request) -> bool:
        user = getattr(request, "user", None)
        return bool(request.META.get("HTTP_AUTHORIZATION")) or bool(user is not None and user.is_authenticated)


class RetryAfterMiddleware:
    """Every 429 says when to try again (issue 13): django-axes' lock-out page had no ``Retry-After``.

    DRF's throttles and the upload view set their own (the wait their rate implies); a 429 without
    one is a log-in lock-out, which lasts at most ``AXES_COOLOFF_TIME``. Sits outside AxesMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 429 and "Retry-After" not in response:
            cool_off = getattr(settings, "AXES_COOLOFF_TIME", None)
            response["Retry-After"] = str(int(cool_off.total_seconds()) if cool_off else 60)
        return response
