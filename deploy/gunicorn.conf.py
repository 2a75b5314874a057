"""gunicorn settings for the web processes: ``gunicorn -c deploy/gunicorn.conf.py skinsite.wsgi``.

Everything can be set from the environment (docker-compose.yml and docs/DEPLOY.md do). The web
processes never load the model (the Celery workers do), so they are small: a few processes with a
few threads each serve uploads, polling and pages, which mostly wait on the database.

The request body limit is not here: nginx's ``client_max_body_size`` refuses large bodies before
they reach gunicorn, and Django's RequestSizeLimitMiddleware (MAX_REQUEST_BYTES) is the second line
for deployments without nginx.
"""

import os
import shutil
import tempfile


def _int(name, default):
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = _int("GUNICORN_WORKERS", 2)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
# An upload is sanitised (decode, re-encode) and encrypted in the request: allow for a slow one,
# but do not let a stuck request hold a thread forever. nginx's proxy_read_timeout matches (60 s).
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle processes now and then (bounded memory growth), not all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
# X-Forwarded-* is trusted from these addresses only (nginx on the same host by default);
# Django has its own rule for them (SECURE_PROXY_SSL_HEADER, TRUSTED_PROXY_COUNT).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
control_socket_disable = True  # no management socket under $HOME: processes are managed by the supervisor
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # the workers' heartbeat files: never on a slow or full disk

# Prometheus: with several processes, each keeps its own request counters. In multiprocess mode
# they write them to files in one folder, and /metrics (ops/metrics.py) sums the folder. The
# variable must be set before the application imports prometheus_client, i.e. here, in the master.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="skinsite-prometheus-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    """Start from an empty metrics folder: files of a previous run would be counted again."""
    os.makedirs(_metrics_dir, exist_ok=True)
    for entry in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, entry)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def child_exit(server, worker):
    """A process that exits (max_requests, crash) keeps its counters; its live gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
