"""An authentication backend that refuses log-ins from an address with too many recent failures.

First in AUTHENTICATION_BACKENDS, so it runs for every log-in (the web form, the admin's, the API
token endpoint) before axes and before any password is checked. Raising PermissionDenied stops
``authenticate()`` there; the views that can answer 429 (accounts.views.LoginView,
diagnosis.api.views.TokenView) see the mark it leaves on the request.
"""

from django.core.exceptions import PermissionDenied

from . import limits


class AddressLimitBackend:
    # Not a BaseBackend on purpose: without get_user() it never becomes the backend a session (or a
    # test's force_login) is tied to, and it grants no permissions; it only ever refuses.

    def authenticate(self, request, **credentials):
        # Never a user: either it refuses (PermissionDenied), or the next backend decides.
        if request is None:
            return
        limit = limits.login_failures(request)
        if limit.exceeded():
            setattr(getattr(request, "_request", request), limits.LIMITED, limit.retry_after())
            raise PermissionDenied("too many failed log-ins from this address")
