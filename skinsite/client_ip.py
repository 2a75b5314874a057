"""The client's address, as far as we can trust it (for axes lock-outs and the audit log).

Behind TRUSTED_PROXY_COUNT proxies, each appends the address it received the request from to
X-Forwarded-For, so the entry written by the proxy nearest to Django is the last one, and the
client's own is ``count`` entries from the right. Entries further left were written by the client
and could be anything, so they are never used. Without proxies, REMOTE_ADDR.
(deploy/nginx.conf sets X-Forwarded-For to $remote_addr: one entry, one proxy.)
"""

from django.conf import settings


def client_ip(request):
    request = getattr(request, "_request", request)  # a DRF Request wraps the HttpRequest
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= count:
            return hops[-count]
    return request.META.get("REMOTE_ADDR") or None
