"""Worker readiness, as the worker processes report it.

A row per worker process (host name + pid), refreshed every HEALTH_HEARTBEAT_SECONDS by a
thread in that process once it has tried to load the model. /healthz counts the fresh rows
whose model loaded. The database (not the cache) holds them because it is the one store every
deployment shares, the embedded development setup (SQLite, per-process memory cache) included.
"""

from datetime import timedelta

from django.db import models
from django.utils import timezone


class WorkerHeartbeatQuerySet(models.QuerySet):
    def fresh(self, max_age_seconds: float, now=None):
        return self.filter(seen_at__gte=(now or timezone.now()) - timedelta(seconds=max_age_seconds))

    def ready(self):
        return self.filter(model_loaded=True)


class WorkerHeartbeat(models.Model):
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.CharField(max_length=255, blank=True)
    model_loaded = models.BooleanField(default=False)
    model_version = models.CharField(max_length=100, blank=True)
    runtime = models.CharField(max_length=50, blank=True, help_text="Which inference runtime serves the model.")
    error = models.TextField(blank=True, help_text="Why the model could not be loaded.")
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = WorkerHeartbeatQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hostname", "pid"], name="ops_heartbeat_unique_process")]

    def __str__(self):
        state = self.model_version if self.model_loaded else "no model"
        return f"{self.hostname}:{self.pid} ({state})"
