"""/healthz and /metrics, for load balancers, orchestrators and Prometheus (not for people)."""

import prometheus_client
from django.http import HttpResponse, JsonResponse

from .health import run_checks
from .metrics import exposition, may_scrape

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def healthz(request):
    """200 when the database, the broker and a worker with a loaded model all answer; else 503 naming the failure."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD", **NO_STORE})
    healthy, checks = run_checks()
    return JsonResponse({"status": "ok" if healthy else "failed", "checks": checks},
                        status=200 if healthy else 503, headers=NO_STORE)


def metrics(request):
    """Prometheus text format, for scrapers allowed by METRICS_ALLOWED_IPS or METRICS_TOKEN only."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD", **NO_STORE})
    if not may_scrape(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain; charset=utf-8", headers=NO_STORE)
    return HttpResponse(exposition(), content_type=prometheus_client.CONTENT_TYPE_LATEST, headers=NO_STORE)
