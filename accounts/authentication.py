"""DRF authentication that names the caller in the audit log.

AuditlogMiddleware takes the actor from ``request.user`` before the view runs, which is the
session user: a caller that authenticates with an API token is still anonymous then, so its
uploads and deletions were recorded as "system". Once DRF has authenticated the token, this
puts the user into the audit context of the request (the one AuditlogMiddleware opened), so
every entry the request writes afterwards carries the real actor, as on the web.

The tokens are django-rest-knox's (hashed at rest, with an expiry; see REST_KNOX in settings),
sent the same way DRF's were: ``Authorization: Token <key>``.
"""

from auditlog.context import auditlog_value
from knox.auth import TokenAuthentication


def attribute_to(user) -> bool:
    """Make ``user`` the actor of the audit entries the current request writes from now on."""
    try:
        context = auditlog_value.get()
    except LookupError:  # no AuditlogMiddleware around this call (a test or a script)
        return False
    if context.get("actor") is None:
        context["actor"] = user
    return True


class AuditedTokenAuthentication(TokenAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            attribute_to(result[0])
        return result
