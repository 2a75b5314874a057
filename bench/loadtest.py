"""Load test: N concurrent API users upload photos through gunicorn + Celery + Redis + PostgreSQL.

One command, loopback only, bounded, cleans up after itself:

    nice -n 10 .venv/bin/python bench/loadtest.py --users 50 --photos 500

It creates a throwaway PostgreSQL database (``--postgres``, trust auth on 127.0.0.1 by default)
and uses a Redis database of its own (``--redis``) with queue names unique to the run, migrates,
starts gunicorn (deploy/gunicorn.conf.py, a free loopback port) and a prefork Celery worker on the
run's inference queue with the shipped model, and waits until /healthz says a worker has loaded
the model. It then creates the users (with consent and API tokens) and lets each of them, in a
thread, take the next photo from a shared pile, upload it (``POST /api/v1/submissions/``) and poll
``GET /api/v1/submissions/<uuid>/`` until the result is final (every 0.25 s, then 30 % longer
each time up to 1 s, like the result page), then take the next photo. Photos are real HAM10000
images from ``--images`` (e.g. DATA/ham10000/images), or synthetic ones without it.

It reports throughput, p50/p95/p99 of the upload-to-result latency as the users saw it (upload
request sent → poll that saw the final result) and as the server recorded it (``finished_at -
created_at``), and checks that every accepted upload produced exactly one finished result: *lost*
= never final before the deadline; *duplicated* = more than one submission row for one upload, or a
prediction set that is not exactly one row per class with ranks 1..K. The JSON goes to
``--json`` (docs/load_test.json) and a Markdown report with the machine description to ``--report``
(docs/LOAD_TEST.md). Everything it started is stopped and the database dropped, also on Ctrl-C
and when ``--timeout`` (the global bound) runs out.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
TARGET_P95_SECONDS = 2.0


class Deadline(Exception):
    """The global time bound ran out."""


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[loadtest {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, q):
    """Nearest-rank percentile (no interpolation: every reported value is one that was measured)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-q * len(ordered) // 100)))
    return ordered[int(rank) - 1]


def summary(values) -> dict:
    if not values:
        return {"count": 0}
    return {"count": len(values), "mean": statistics.fmean(values), "p50": percentile(values, 50),
            "p95": percentile(values, 95), "p99": percentile(values, 99), "max": max(values)}


def machine() -> dict:
    if str(ROOT) not in sys.path:  # run as a script, bench/ is not imported as a package
        sys.path.insert(0, str(ROOT))
    from bench.machine import cpu_model, memory_gib

    cpu = cpu_model()
    gib = memory_gib()
    memory = f"{gib:.1f} GiB" if gib is not None else ""
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory": memory, "os": platform.platform(),
            "python": platform.python_version(), "load_average_at_start": os.getloadavg(),
            "nice": os.nice(0)}


def load_photos(images_dir: Path | None, count: int, seed: int) -> tuple[list[tuple[str, bytes]], str]:
    """``count`` (name, JPEG bytes) pairs: a seeded sample of real photos, or synthetic ones."""
    files = sorted(images_dir.glob("*.jpg")) if images_dir and images_dir.is_dir() else []
    if files:
        rng = random.Random(seed)
        picked = rng.sample(files, count) if count <= len(files) else [rng.choice(files) for _ in range(count)]
        return [(p.name, p.read_bytes()) for p in picked], f"HAM10000 photos from {images_dir} (seed {seed})"
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        base = rng.integers(90, 220, 3)
        arr = np.clip(base + rng.normal(0, 25, (150, 200, 3)), 0, 255).astype("uint8")
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=90)
        photos.append((f"synthetic-{i}.jpg", buf.getvalue()))
    return photos, "synthetic 200x150 JPEGs (" + (f"{images_dir} not found" if images_dir else "no --images given") + ")"


# --------------------------------------------------------------------------- the stack


class Stack:
    """The throwaway database, gunicorn and the Celery worker; ``close()`` undoes all of it."""

    def __init__(self, args):
        self.args = args
        self.run_id = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.db_name = f"loadtest_{self.run_id}"
        self.queue = f"loadtest-{self.run_id}-inference"
        self.port = args.port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="skinsite-loadtest-"))
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.db_created = False
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "skinsite.settings",
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "0",  # DEBUG keeps every SQL query in memory: not what production runs
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"{args.postgres.rstrip('/')}/{self.db_name}",
            "REDIS_URL": args.redis,
            "CELERY_INFERENCE_QUEUE": self.queue,
            "MEDIA_ROOT": str(self.tmp / "media"),
            # The test measures the pipeline, not the API's per-user rate limits.
            "THROTTLE_USER": "1000000/hour", "THROTTLE_UPLOADS": "1000000/hour", "THROTTLE_ANON": "1000000/hour",
            "LOG_LEVEL": "WARNING",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(args.web_workers),
            "GUNICORN_THREADS": str(args.web_threads),
            "GUNICORN_ACCESS_LOG": "",  # no access log: 500 uploads and their polls would flood it
            "GUNICORN_LOG_LEVEL": "warning",
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"),
            "HEALTH_HEARTBEAT_SECONDS": "5",
            # One inference thread per worker process (several single-threaded processes beat fewer
            # multi-threaded ones on this kind of machine; docs/PERFORMANCE.md).
            "ML_THREADS": "1", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if args.runtime:
            self.env["ML_RUNTIME"] = args.runtime
        if args.heatmaps:
            self.env["ML_HEATMAPS"] = "1" if args.heatmaps == "on" else "0"

    # -- database
    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.args.postgres.rstrip('/')}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create_database(self) -> None:
        self._admin(f'CREATE DATABASE "{self.db_name}"')
        self.db_created = True

    def manage(self, *argv: str, stdin: str | None = None, timeout: float = 600) -> str:
        result = subprocess.run([str(VENV_BIN / "python"), "manage.py", *argv], cwd=ROOT, env=self.env,
                                input=stdin, capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(argv)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    # -- processes
    def start(self, name: str, argv: list[str]) -> None:
        logfile = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=logfile, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: stopped as a whole
        self.processes.append((name, proc))

    def start_web(self) -> None:
        self.start("gunicorn", [str(VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "skinsite.wsgi"])

    def start_worker(self) -> None:
        self.start("worker", [str(VENV_BIN / "celery"), "-A", "skinsite", "worker", "--pool=prefork",
                              f"--concurrency={self.args.worker_processes}", "-Q", self.queue,
                              "--without-gossip", "--without-mingle", "-l", "warning",
                              "-n", f"loadtest-{self.run_id}@%h"])

    def check_alive(self) -> None:
        for name, proc in self.processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.tmp / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_healthy(self, timeout: float) -> dict:
        """Until /healthz answers 200: database, broker and a worker that has loaded the model."""
        import requests

        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = requests.get(f"{self.base_url}/healthz", timeout=5)
                last = response.json()
                if response.status_code == 200 and last["checks"]["model"].get("workers", 0) >= 1:
                    return last
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        raise RuntimeError(f"the stack was not healthy after {timeout:.0f}s: {last}\n{self.tail('worker')}")

    def close(self) -> None:
        for name, proc in reversed(self.processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, proc in reversed(self.processes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in 30 s: killing it")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if self.db_created:
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - report and go on cleaning
                log(f"could not drop database {self.db_name}: {exc}")
        try:
            import redis

            client = redis.Redis.from_url(self.args.redis)
            keys = list(client.scan_iter(f"*{self.queue}*"))
            if keys:
                client.delete(*keys)
        except Exception as exc:  # noqa: BLE001
            log(f"could not remove the run's Redis keys: {exc}")
        if self.args.logs:
            self.args.logs.mkdir(parents=True, exist_ok=True)
            for log_file in self.tmp.glob("*.log"):
                shutil.copy(log_file, self.args.logs / log_file.name)
        shutil.rmtree(self.tmp, ignore_errors=True)


def create_users(stack: Stack, count: int) -> list[str]:
    """``count`` users who accepted the consent, each with an API token (created directly: not timed)."""
    script = (
        "import json\n"
        "from django.conf import settings\n"
        "from accounts.services import issue_api_token\n"
        "from accounts.models import Consent, User\n"
        "tokens = []\n"
        f"for i in range({count}):\n"
        "    user = User.objects.create_user(f'load{i}', f'load{i}@example.invalid', None)\n"
        "    Consent.objects.create(user=user, version=settings.CONSENT_VERSION)\n"
        "    tokens.append(issue_api_token(user)[1])\n"
        "print(json.dumps(tokens))\n"
    )
    out = stack.manage("shell", "--verbosity", "0", "-c", script)
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the users


class Run:
    """The shared pile of photos and what every user saw."""

    def __init__(self, base_url: str, photos, deadline: float, last_upload: float, think: float = 0.0,
                 seed: int = 0):
        self.think = think  # mean pause between a result and the next upload (exponential)
        self.random = random.Random(seed)
        self.base_url = base_url
        self.photos = list(enumerate(photos))
        self.deadline = deadline  # polling stops here
        self.last_upload = last_upload  # no new upload after this: in-flight photos get time to finish
        self.lock = threading.Lock()
        self.records: list[dict] = []
        self.errors: list[str] = []

    def next_photo(self):
        with self.lock:
            return self.photos.pop(0) if self.photos else None

    def user(self, token: str) -> None:
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        if self.think:  # users arrive over time too, rather than all in the first second
            with self.lock:
                pause = self.random.expovariate(1 / self.think)
            time.sleep(pause)
        while time.monotonic() < self.last_upload:
            item = self.next_photo()
            if item is None:
                return
            index, (name, content) = item
            sent = time.monotonic()
            record = {"photo": index, "name": name, "sent_at": sent}
            try:
                response = session.post(f"{self.base_url}/api/v1/submissions/",
                                        files={"image": (name, content, "image/jpeg")}, timeout=60)
            except requests.RequestException as exc:
                record.update(upload_status=None, error=f"upload: {exc.__class__.__name__}")
                self._keep(record)
                continue
            record.update(upload_status=response.status_code, upload_seconds=time.monotonic() - sent)
            if response.status_code != 201:
                record["error"] = f"upload answered {response.status_code}: {response.text[:200]}"
                self._keep(record)
                continue
            record["uuid"] = response.json()["uuid"]
            record.update(self._wait_final(session, record["uuid"], sent))
            self._keep(record)
            if self.think:
                with self.lock:
                    if not self.photos:
                        return
                    pause = self.random.expovariate(1 / self.think)
                time.sleep(min(pause, max(0.0, self.last_upload - time.monotonic())))
                # After a pause longer than gunicorn's keep-alive (5 s) the pooled connection may be
                # closing just as the next POST goes out (a client-side ConnectionError, nothing stored);
                # a browser opens a new connection then, so does this user.
                session.close()

    def _wait_final(self, session, submission_uuid: str, sent: float) -> dict:
        import requests

        delay, polls = 0.25, 0
        while time.monotonic() < self.deadline:
            time.sleep(delay)
            delay = min(delay * 1.3, 1.0)
            polls += 1
            try:
                response = session.get(f"{self.base_url}/api/v1/submissions/{submission_uuid}/", timeout=30)
            except requests.RequestException:
                continue
            if response.status_code != 200:
                continue
            body = response.json()
            if body["is_final"]:
                now = time.monotonic()
                return {"final": True, "status": body["status"], "client_seconds": now - sent, "final_at": now,
                        "polls": polls, "model_version": body["model_version"],
                        "created_at": body["created_at"], "started_at": body["started_at"],
                        "finished_at": body["finished_at"], "prediction_count": len(body["predictions"] or [])}
        return {"final": False, "polls": polls}

    def _keep(self, record: dict) -> None:
        with self.lock:
            self.records.append(record)


# --------------------------------------------------------------------------- checks and report

AUDIT = """
import json
from django.db.models import Count
from diagnosis.models import Prediction, Submission
rows = {}
for s in Submission.objects.values("uuid", "image_sha256", "status", "created_at", "started_at", "finished_at", "attempts"):
    rows[str(s["uuid"])] = {"sha": s["image_sha256"], "status": s["status"], "attempts": s["attempts"],
                            "created_at": s["created_at"].isoformat(),
                            "started_at": s["started_at"] and s["started_at"].isoformat(),
                            "finished_at": s["finished_at"] and s["finished_at"].isoformat()}
for p in Prediction.objects.values("submission__uuid", "rank", "model_version"):
    row = rows[str(p["submission__uuid"])]
    row.setdefault("ranks", []).append(p["rank"])
    row.setdefault("versions", []).append(p["model_version"])
from ops.models import WorkerHeartbeat
workers = list(WorkerHeartbeat.objects.values("model_version", "runtime", "model_loaded", "queues"))
from django.conf import settings
from ml.artifact import read_metadata
classes = len(read_metadata(settings.ML_MODEL_DIR, verify=False)["classes"])
print(json.dumps({"submissions": rows, "workers": workers, "classes": classes,
                  "heatmaps": getattr(settings, "ML_HEATMAPS", False)}))
"""


def audit(stack: Stack, run: Run) -> dict:
    """Compare what the users saw with what the database holds: lost, duplicated, failed."""
    data = json.loads(stack.manage("shell", "--verbosity", "0", "-c", AUDIT).strip().splitlines()[-1])
    rows, classes = data["submissions"], data["classes"]
    accepted = [r for r in run.records if r.get("uuid")]
    lost = [r["uuid"] for r in accepted if rows.get(r["uuid"], {}).get("status") not in ("done", "failed", "rejected")]
    unseen = [r["uuid"] for r in accepted if not r.get("final")]
    duplicated_rows = len(rows) - len(accepted)  # rows no upload of ours accounts for
    bad_sets = []
    for r in accepted:
        row = rows.get(r["uuid"], {})
        # A result (done, or rejected as not skin) ranks every class once; a failure stores none.
        expected = list(range(1, classes + 1)) if row.get("status") in ("done", "rejected") else []
        if sorted(row.get("ranks", [])) != expected:
            bad_sets.append(r["uuid"])
    statuses = {}
    for r in accepted:
        status = rows.get(r["uuid"], {}).get("status", "missing")
        statuses[status] = statuses.get(status, 0) + 1

    def seconds(row, start):
        if not (row.get("finished_at") and row.get(start)):
            return None
        return (datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(row[start])).total_seconds()

    server_latency = [v for r in accepted if (v := seconds(rows.get(r["uuid"], {}), "created_at")) is not None]
    analysis = [v for r in accepted if (v := seconds(rows.get(r["uuid"], {}), "started_at")) is not None]
    attempts = [rows[r["uuid"]]["attempts"] for r in accepted if r["uuid"] in rows]
    versions = sorted({v for row in rows.values() for v in row.get("versions", [])})
    return {
        "accepted_uploads": len(accepted), "submission_rows": len(rows), "statuses": statuses,
        "lost": len(lost), "lost_uuids": lost[:20], "never_seen_final_by_client": len(unseen),
        "duplicated": max(0, duplicated_rows) + len(bad_sets), "duplicate_rows": max(0, duplicated_rows),
        "bad_prediction_sets": bad_sets[:20], "classes": classes,
        "analysis_attempts_max": max(attempts) if attempts else None,
        "server_latency_seconds": summary(server_latency), "analysis_seconds": summary(analysis),
        "model_versions": versions, "workers": data["workers"], "heatmaps": data["heatmaps"],
    }


HISTORY = 10  # runs kept in the JSON file and summarised in the report


def history_row(result: dict) -> str:
    c, a, cfg = result["client_latency_seconds"], result["audit"], result["config"]

    def f(value):
        return "–" if value is None else f"{value:.2f}"

    runtimes = ", ".join(sorted({w["runtime"] for w in a["workers"] if w.get("runtime")})) or "?"
    think = f", think {cfg['think_seconds']:g} s" if cfg.get("think_seconds") else ""
    return (f"| {result['finished_at']} | {cfg['users']} × {cfg['photos']}{think} | {cfg['worker_processes']} | "
            f"{runtimes}, heatmaps {'on' if a.get('heatmaps') else 'off'} | {f(result['throughput_per_second'])} | "
            f"{f(c.get('p50'))} / {f(c.get('p95'))} / {f(c.get('p99'))} | {a['lost']} | {a['duplicated']} | "
            f"{a['accepted_uploads']} |")


def breakdown(result: dict) -> list[str]:
    """Where the mean latency went: upload request, queue, analysis, and the wait for the next poll."""
    c, s = result["client_latency_seconds"], result["audit"]["server_latency_seconds"]
    analysis, upload = result["audit"]["analysis_seconds"], result["upload_seconds"]
    if not (c.get("count") and s.get("count") and analysis.get("count") and upload.get("count")):
        return []
    queue = s["mean"] - analysis["mean"]
    poll = c["mean"] - s["mean"] - upload["mean"]
    return [f"Where the mean upload-to-result time ({c['mean']:.2f} s) went: the upload request {upload['mean']:.2f} s, "
            f"waiting in the queue {queue:.2f} s, the analysis {analysis['mean']:.2f} s, and until the next poll "
            f"saw it about {max(poll, 0):.2f} s.", ""]


def report_markdown(result: dict, earlier: list[dict] = ()) -> str:
    c, s, a = result["client_latency_seconds"], result["audit"]["server_latency_seconds"], result["audit"]
    m, cfg = result["machine"], result["config"]

    def f(value, digits=2):
        return "–" if value is None else f"{value:.{digits}f}"

    runtimes = sorted({w["runtime"] for w in a["workers"] if w.get("runtime")}) or ["?"]
    verdict = "met" if c.get("p95") is not None and c["p95"] <= TARGET_P95_SECONDS else "missed"
    lines = [
        "# Load test",
        "",
        f"Latest run: {result['finished_at']} (`{result['command']}`). Produced by `bench/loadtest.py`, which",
        "regenerates this file and `docs/load_test.json` on every run.",
        "",
        "## What it does",
        "",
        "A throwaway PostgreSQL database, a Redis database with queue names of its own, gunicorn",
        "(`deploy/gunicorn.conf.py`) on a loopback port and a prefork Celery worker on the inference",
        "queue with the shipped model; it waits for `/healthz` to report a worker with the model",
        f"loaded, then {cfg['users']} API users, each in its own thread, take the next photo from a pile of",
        f"{cfg['photos']}, upload it (`POST /api/v1/submissions/`), poll `GET /api/v1/submissions/<uuid>/` until",
        "the result is final (0.25 s, then 30 % longer each time up to 1 s) and take the next photo "
        + (f"after a pause (exponential, mean {cfg['think_seconds']:g} s)" if cfg.get("think_seconds")
           else "at once (no think time)")
        + f": at most {cfg['users']} photos in flight. Afterwards it reads the database to check that every",
        "accepted upload has exactly one submission row and, for a result, exactly one prediction per class",
        "(ranks 1..K; none for a failure), and stops and drops everything.",
        "",
        "## Results",
        "",
        "| | Target | Measured |",
        "| --- | --- | --- |",
        f"| Upload-to-result p95, as the users saw it | ≤ {TARGET_P95_SECONDS:g} s | **{f(c.get('p95'))} s** ({verdict}) |",
        f"| Lost (never final) | 0 | **{a['lost']}** |",
        f"| Duplicated (extra rows or prediction sets) | 0 | **{a['duplicated']}** |",
        f"| Throughput (final results per second, first upload to last result) | – | {f(result['throughput_per_second'])} |",
        f"| Accepted uploads / photos | {cfg['photos']} | {a['accepted_uploads']} / {cfg['photos']} "
        f"({cfg['photos'] - result['attempted_uploads']} not sent before the time bound) |",
        f"| Final statuses | – | {', '.join(f'{k} {v}' for k, v in sorted(a['statuses'].items()))} |",
        "",
        "| Latency (s) | p50 | p95 | p99 | max | mean |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| Upload-to-result, users' view (upload sent → poll saw final) | {f(c.get('p50'))} | {f(c.get('p95'))} | {f(c.get('p99'))} | {f(c.get('max'))} | {f(c.get('mean'))} |",
        f"| Upload-to-result, server's view (`finished_at - created_at`) | {f(s.get('p50'))} | {f(s.get('p95'))} | {f(s.get('p99'))} | {f(s.get('max'))} | {f(s.get('mean'))} |",
        f"| Analysis in the worker (`finished_at - started_at`) | {f(a['analysis_seconds'].get('p50'), 3)} | {f(a['analysis_seconds'].get('p95'), 3)} | {f(a['analysis_seconds'].get('p99'), 3)} | {f(a['analysis_seconds'].get('max'), 3)} | {f(a['analysis_seconds'].get('mean'), 3)} |",
        f"| Upload request alone | {f(result['upload_seconds'].get('p50'), 3)} | {f(result['upload_seconds'].get('p95'), 3)} | {f(result['upload_seconds'].get('p99'), 3)} | {f(result['upload_seconds'].get('max'), 3)} | {f(result['upload_seconds'].get('mean'), 3)} |",
        "",
        *breakdown(result),
        *([] if cfg.get("think_seconds") else [
            f"With {cfg['users']} users and no think time, {cfg['users']} photos are always in flight, so by Little's law",
            f"the mean latency is {cfg['users']} ÷ throughput ({cfg['users']} ÷ {f(result['throughput_per_second'])} = "
            f"{f(cfg['users'] / result['throughput_per_second']) if result['throughput_per_second'] else '–'} s): a p95 of "
            f"{TARGET_P95_SECONDS:g} s at this load needs at least {cfg['users'] / TARGET_P95_SECONDS:g} results per second, "
            "whatever the code does per photo.",
            "",
        ]),
        "The users' view includes the polling granularity (up to 1 s) and is the number the target is",
        "judged on; the server's view is exact.",
        "",
        "## Set-up of this run",
        "",
        f"- Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory']} RAM, {m['os']}, Python {m['python']}; load",
        f"  average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}; niceness {m['nice']}.",
        *([f"  {result['note']}"] if result.get("note") else []),
        f"- Model: {', '.join(a['model_versions']) or '?'}, runtime {', '.join(runtimes)}; {cfg['worker_processes']} prefork "
        "worker processes with one inference thread each (`ML_THREADS=1`, `OMP_NUM_THREADS=1`); "
        f"explanation heatmaps {'on (`ML_HEATMAPS`, the default: the occlusion map is computed before the result is stored)' if a.get('heatmaps') else 'off (`ML_HEATMAPS=0`)'}.",
        f"- Web: gunicorn, {cfg['web_workers']} processes × {cfg['web_threads']} threads (gthread), `DEBUG` off.",
        f"- Photos: {result['photo_source']}.",
        "- API throttles raised for the run (the per-user upload limit, 60/hour by default, would stop a",
        "  user after 60 photos); the test measures the pipeline, not the rate limits.",
        f"- Wall time of the whole command {result['wall_seconds']:.0f} s (start-up {result['startup_seconds']:.0f} s).",
        "",
        "## Recent runs",
        "",
        "Kept in `docs/load_test.json` (newest first); latency is the users' view.",
        "",
        "| Finished | Users × photos | Worker processes | Runtime | Results/s | p50 / p95 / p99 (s) | Lost | Duplicated | Accepted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(history_row(run) for run in [result, *earlier]),
        "",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean pause (s, exponential) between a user's result and their next upload; 0: none")
    parser.add_argument("--worker-processes", type=int, default=2, help="Celery prefork processes (one model each)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn process")
    parser.add_argument("--runtime", choices=["auto", "keras", "litert"], default=None,
                        help="ML_RUNTIME for the worker (default: the artifact's choice)")
    parser.add_argument("--heatmaps", choices=["on", "off"], default=None,
                        help="ML_HEATMAPS for the worker (default: the site's default)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432",
                        help="server URL without a database name; a throwaway database is created there")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="a Redis database for this run")
    parser.add_argument("--images", type=Path, default=None,
                        help="folder of JPEG photos to upload, e.g. DATA/ham10000/images (synthetic photos without it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="loopback port for gunicorn (default: a free one)")
    parser.add_argument("--timeout", type=float, default=1800, help="global bound in seconds; everything stops then")
    parser.add_argument("--startup-timeout", type=float, default=300)
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "load_test.json")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "LOAD_TEST.md")
    parser.add_argument("--logs", type=Path, default=None, help="keep gunicorn's and the worker's logs here")
    parser.add_argument("--note", default="", help="a sentence about the conditions, put in the report")
    args = parser.parse_args(argv)

    started = time.monotonic()
    hard_deadline = started + args.timeout

    def on_alarm(signum, frame):
        raise Deadline(f"the global bound of {args.timeout:.0f}s ran out")

    signal.signal(signal.SIGALRM, on_alarm)
    def on_term(signum, frame):
        raise KeyboardInterrupt("terminated")

    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(args.timeout) + 1)  # a last resort: the drivers stop by themselves before it

    photos, photo_source = load_photos(args.images, args.photos, args.seed)
    stack = Stack(args)
    info = machine()
    log(f"run {stack.run_id}: {args.users} users, {args.photos} photos ({photo_source}); "
        f"{args.worker_processes} worker processes; gunicorn {args.web_workers}x{args.web_threads} on {stack.base_url}")
    try:
        stack.create_database()
        log(f"database {stack.db_name} created; migrating")
        stack.manage("migrate", "--noinput", timeout=max(60, hard_deadline - time.monotonic()))
        stack.start_web()
        stack.start_worker()
        tokens = create_users(stack, args.users)
        health = stack.wait_healthy(min(args.startup_timeout, hard_deadline - time.monotonic()))
        startup = time.monotonic() - started
        log(f"healthy after {startup:.0f}s: {health['checks']['model']}")

        # A minute is left for the audit and the teardown; before that, uploads stop early enough
        # for the photos in flight to finish, so "not final" means lost, not cut off by the bound.
        poll_until = hard_deadline - 60
        run = Run(stack.base_url, photos, deadline=poll_until,
                  last_upload=poll_until - max(120.0, 0.15 * (poll_until - time.monotonic())),
                  think=args.think, seed=args.seed)
        threads = [threading.Thread(target=run.user, args=(token,), name=f"user-{i}", daemon=True)
                   for i, token in enumerate(tokens)]
        load_started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            stack.check_alive()
            done = sum(1 for r in run.records if r.get("final"))
            log(f"{done}/{args.photos} final, {len(run.records)} finished by the users")
            for thread in threads:
                thread.join(timeout=10 / len(threads))
        load_seconds = time.monotonic() - load_started
        log(f"load done in {load_seconds:.1f}s; auditing the database")

        result_audit = audit(stack, run)
        final = [r for r in run.records if r.get("final")]
        result = {
            "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["bench/loadtest.py", *(argv if argv is not None else sys.argv[1:])]),
            "config": {"users": args.users, "photos": args.photos, "worker_processes": args.worker_processes,
                       "think_seconds": args.think,
                       "heatmaps_requested": args.heatmaps or "site default",
                       "web_workers": args.web_workers, "web_threads": args.web_threads,
                       "runtime_requested": args.runtime or "artifact default"},
            "machine": info, "note": args.note, "photo_source": photo_source,
            "startup_seconds": startup, "load_seconds": load_seconds,
            # From the first upload sent to the last result seen (not to the end of the users' last pause).
            "throughput_per_second": (len(final) / (max(r["final_at"] for r in final) - min(r["sent_at"] for r in run.records))
                                      if final else None),
            "client_latency_seconds": summary([r["client_seconds"] for r in final]),
            "upload_seconds": summary([r["upload_seconds"] for r in run.records if "upload_seconds" in r]),
            "upload_errors": [r["error"] for r in run.records if r.get("error")][:20],
            "attempted_uploads": len(run.records),
            "audit": result_audit,
            "target": {"p95_seconds": TARGET_P95_SECONDS, "lost": 0, "duplicated": 0},
        }
        result["wall_seconds"] = time.monotonic() - started
        ok = (result_audit["lost"] == 0 and result_audit["duplicated"] == 0
              and result_audit["accepted_uploads"] == args.photos)
        result["passed_integrity"] = ok
        result["met_latency_target"] = bool(final) and result["client_latency_seconds"]["p95"] <= TARGET_P95_SECONDS
        args.json.parent.mkdir(parents=True, exist_ok=True)
        try:
            earlier = json.loads(args.json.read_text()).get("runs", [])[: HISTORY - 1]
        except (OSError, ValueError, AttributeError):
            earlier = []
        args.json.write_text(json.dumps({"runs": [result, *earlier]}, indent=2) + "\n")
        args.report.write_text(report_markdown(result, earlier))
        c = result["client_latency_seconds"]
        log(f"throughput {result['throughput_per_second']:.2f}/s; latency p50 {c.get('p50')} p95 {c.get('p95')} "
            f"p99 {c.get('p99')} s; lost {result_audit['lost']}, duplicated {result_audit['duplicated']}, "
            f"statuses {result_audit['statuses']}")
        log(f"wrote {args.json} and {args.report}")
        return 0 if ok else 1
    except (Deadline, KeyboardInterrupt) as exc:
        log(f"stopped: {exc or 'interrupted'}")
        return 2
    finally:
        signal.alarm(0)
        log("stopping gunicorn and the worker, dropping the database")
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
