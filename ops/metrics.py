"""Prometheus metrics: django-prometheus's HTTP metrics plus the state of the analysis pipeline.

The pipeline metrics are read at scrape time from the stores every process shares (the database
and the broker), so any web process answers the same whatever ran where:

- ``skinsite_queue_messages{queue}``: messages waiting in the broker.
- ``skinsite_submissions{status}``: submissions by status (``failed`` counts the failures).
- ``skinsite_oldest_waiting_submission_age_seconds``: how long the oldest unfinished one has waited.
- ``skinsite_analysis_duration_seconds``: histogram of ``finished_at - started_at`` (the model's work).
- ``skinsite_result_latency_seconds``: histogram of ``finished_at - created_at`` (upload to result).
- ``skinsite_workers_ready{model_version,runtime}``: inference worker processes with a fresh heartbeat.

The histograms cover every finished submission still stored, so they only grow (deleting photos
makes them shrink, which Prometheus's ``rate()`` reads as a counter reset).

django-prometheus's own metrics live in each process's memory; with several gunicorn workers set
``PROMETHEUS_MULTIPROC_DIR`` (deploy/gunicorn.conf.py does) so that one scrape sums them all.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections import Counter
from datetime import timedelta

import prometheus_client
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def _histogram(name, documentation, start_field, queryset):
    """One cumulative histogram from the database, in one aggregate query."""
    duration = ExpressionWrapper(F("finished_at") - F(start_field), output_field=DurationField())
    rows = queryset.filter(finished_at__isnull=False, **{f"{start_field}__isnull": False}).annotate(d=duration)
    aggregates = {f"le{i}": Count("pk", filter=Q(d__lte=timedelta(seconds=bound)))
                  for i, bound in enumerate(DURATION_BUCKETS)}
    result = rows.aggregate(total=Count("pk"), seconds=Sum("d"), **aggregates)
    buckets = [(str(bound), result[f"le{i}"]) for i, bound in enumerate(DURATION_BUCKETS)]
    buckets.append(("+Inf", result["total"]))
    seconds = result["seconds"].total_seconds() if result["seconds"] else 0.0
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=seconds)


class PipelineCollector:
    """Collects the analysis pipeline's state on each scrape (see the module docstring)."""

    def collect(self):
        from diagnosis.models import Submission

        from .health import CheckFailed, queue_lengths, ready_workers

        queued = GaugeMetricFamily("skinsite_queue_messages", "Messages waiting in the broker queue.",
                                   labels=["queue"])
        up = GaugeMetricFamily("skinsite_broker_up", "1 if the broker answered this scrape.")
        try:
            for queue, length in queue_lengths().items():
                queued.add_metric([queue], length)
            up.add_metric([], 1)
        except CheckFailed:
            up.add_metric([], 0)
        yield up
        yield queued

        by_status = dict(Submission.objects.values_list("status").annotate(n=Count("pk")).order_by())
        submissions = GaugeMetricFamily("skinsite_submissions", "Submissions by analysis status.", labels=["status"])
        for status in Submission.Status.values:
            submissions.add_metric([status], by_status.get(status, 0))
        yield submissions

        oldest = (Submission.objects.exclude(status__in=Submission.FINAL_STATUSES)
                  .aggregate(t=Min("created_at"))["t"])
        yield GaugeMetricFamily(
            "skinsite_oldest_waiting_submission_age_seconds",
            "Age of the oldest submission not analysed yet (0 when none waits).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
        yield _histogram("skinsite_analysis_duration_seconds",
                         "Time a worker spent analysing a submission (finished_at - started_at).",
                         "started_at", Submission.objects.all())
        yield _histogram("skinsite_result_latency_seconds",
                         "Time from upload to final result (finished_at - created_at).",
                         "created_at", Submission.objects.all())

        workers = GaugeMetricFamily("skinsite_workers_ready",
                                    "Worker processes with a fresh heartbeat and a loaded model.",
                                    labels=["model_version", "runtime"])
        counts = Counter((row.model_version, row.runtime) for row in ready_workers())
        for (version, runtime), count in sorted(counts.items()):
            workers.add_metric([version, runtime], count)
        yield workers


_pipeline_registry = prometheus_client.CollectorRegistry(auto_describe=False)
_pipeline_registry.register(PipelineCollector())


def exposition() -> bytes:
    """The whole text exposition: process/HTTP metrics, then the pipeline's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    return prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(_pipeline_registry)


def may_scrape(request) -> bool:
    """A bearer token (METRICS_TOKEN), or every address the request carries in METRICS_ALLOWED_IPS.

    Both the peer (REMOTE_ADDR) and the client address skinsite.client_ip trusts (behind
    TRUSTED_PROXY_COUNT proxies, the one from X-Forwarded-For) must be allowed: a request from outside
    relayed by nginx on this host comes from 127.0.0.1 but is not "loopback", and a peer that is not
    allowed cannot get in by writing an allowed address into X-Forwarded-For.
    """
    from skinsite.client_ip import client_ip

    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    try:
        addresses = {ipaddress.ip_address(value or "") for value in (request.META.get("REMOTE_ADDR"), client_ip(request))}
    except ValueError:
        return False
    return all(any(address in network for network in settings.METRICS_ALLOWED_NETWORKS) for address in addresses)
