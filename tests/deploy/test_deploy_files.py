"""The deployment files agree with the code: compose services, commands, queues, variables, gunicorn, nginx.

No Docker engine runs here, so docker-compose.yml is parsed (PyYAML) and checked, not started.
"""

import re
import runpy
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
COMPOSE = ROOT / "docker-compose.yml"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PRODUCTION_SECRETS = ("SECRET_KEY", "ALLOWED_HOSTS", "MEDIA_ENCRYPTION_KEY")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def command(service) -> list[str]:
    cmd = service["command"]
    return cmd if isinstance(cmd, list) else cmd.split()


def option(cmd: list[str], name: str) -> str | None:
    """The value of ``-Q x`` / ``--concurrency=x`` style options."""
    for i, arg in enumerate(cmd):
        if arg == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def variables_the_code_reads() -> set[str]:
    """Environment variables read by settings.py, the gunicorn config and ml/ (plus the runtimes' own)."""
    names = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', (ROOT / "skinsite" / "settings.py").read_text()))
    names |= set(re.findall(r'env\(\s*f"([A-Z0-9_]+)\{', (ROOT / "skinsite" / "settings.py").read_text()))
    for path in [GUNICORN_CONF, *sorted((ROOT / "ml").glob("*.py"))]:
        names |= set(re.findall(r'(?:environ\.get|_int|getenv)\(\s*"([A-Z0-9_]+)"', path.read_text()))
        names |= set(re.findall(r'environ\[\s*"([A-Z0-9_]+)"\s*\]', path.read_text()))
    # Read by prometheus_client, OpenMP and TensorFlow themselves.
    return names | {"PROMETHEUS_MULTIPROC_DIR", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"}


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_has_the_services(services):
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(services)


def test_web_runs_gunicorn_with_the_shipped_config(services):
    cmd = command(services["web"])
    assert cmd[0] == "gunicorn" and option(cmd, "-c") == "deploy/gunicorn.conf.py" and cmd[-1] == "skinsite.wsgi"
    assert GUNICORN_CONF.is_file()
    assert services["web"]["environment"]["GUNICORN_BIND"].endswith(":8000")
    # Published on the host's loopback only: nginx in front, never the world.
    assert all(str(port).startswith("127.0.0.1:") for port in services["web"]["ports"])
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_the_inference_worker_consumes_the_queue_analysis_is_routed_to(services):
    cmd = command(services["worker"])
    assert cmd[:4] == ["celery", "-A", "skinsite", "worker"]
    env = services["worker"]["environment"]
    queue = env["CELERY_INFERENCE_QUEUE"]
    assert option(cmd, "-Q").split(",") == [queue]
    assert settings.CELERY_TASK_ROUTES["diagnosis.analyse*"]["queue"] == settings.CELERY_INFERENCE_QUEUE == queue
    # Prefork, one inference thread per process (the measurement: 2 processes x 1 thread).
    assert option(cmd, "--pool") == "prefork"
    assert re.fullmatch(r"\$\{WORKER_PROCESSES:-\d+\}|\d+", option(cmd, "--concurrency"))
    assert {env[name] for name in ("ML_THREADS", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                   "TF_NUM_INTEROP_THREADS")} == {"1"}


def test_some_worker_consumes_the_default_queue_for_periodic_jobs(services):
    from skinsite.celery import app

    consumed = set()
    for service in services.values():
        cmd = command(service) if "command" in service else []
        if cmd[:4] == ["celery", "-A", "skinsite", "worker"]:
            consumed |= set((option(cmd, "-Q") or "").split(","))
    assert app.conf.task_default_queue in consumed
    for name in settings.CELERY_BEAT_SCHEDULE.values():
        assert app.amqp.router.route({}, name["task"])["queue"].name in consumed


def test_exactly_one_beat(services):
    beats = [name for name, s in services.items() if "command" in s and "beat" in command(s)[3:4]]
    assert beats == ["beat"]
    assert "deploy" not in services["beat"] or services["beat"]["deploy"].get("replicas", 1) == 1


def test_every_app_variable_is_one_the_code_reads(services):
    known = variables_the_code_reads()
    for name in ("web", "worker", "beat", "migrate", "worker-default"):
        if name in services:
            unknown = set(services[name]["environment"]) - known - {"POSTGRES_PASSWORD"}
            assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_production_secrets_are_required_not_defaulted(services):
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DJANGO_ENV"] == "production"
        for secret in PRODUCTION_SECRETS:
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), f"{name}: {secret} = {env[secret]!r}"


def test_services_share_the_database_broker_and_photos(services):
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
    media = {name: [v for v in services[name]["volumes"] if v.split(":")[1] == services[name]["environment"]["MEDIA_ROOT"]]
             for name in ("web", "worker")}
    assert media["web"] and media["web"] == media["worker"], "web and worker must share the photo volume"


def test_backing_services_are_healthchecked_and_waited_for(services):
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_runs_as_a_non_root_user_and_serves_with_gunicorn():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE)
    assert re.search(r"^COPY requirements.txt", dockerfile, re.MULTILINE)
    assert "collectstatic" in dockerfile
    assert re.search(r'^CMD \["gunicorn", "-c", "deploy/gunicorn.conf.py", "skinsite.wsgi"\]', dockerfile, re.MULTILINE)


def test_dockerignore_keeps_secrets_and_data_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", "db.sqlite3", "media/", "var/"} <= ignored


# --- gunicorn ---------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_conf(monkeypatch, tmp_path):
    # The config sets PROMETHEUS_MULTIPROC_DIR in os.environ: monkeypatch puts it back afterwards.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_BIND", "0.0.0.0:8123")
    return {k: v for k, v in runpy.run_path(str(GUNICORN_CONF)).items() if not k.startswith("_")}


def test_gunicorn_config_is_valid_and_env_driven(gunicorn_conf):
    from gunicorn.config import Config

    config = Config()
    callables_and_modules = {"os", "shutil", "tempfile", "on_starting", "child_exit"}
    unknown = set(gunicorn_conf) - set(config.settings) - callables_and_modules
    assert not unknown, f"not gunicorn settings: {sorted(unknown)}"
    for name, value in gunicorn_conf.items():
        if name in config.settings:
            config.set(name, value)  # gunicorn's own validation
    assert config.workers == 3 and config.bind == ["0.0.0.0:8123"]
    assert config.worker_class_str == "gthread" and config.threads >= 1
    assert config.timeout == 60 and config.control_socket_disable


def test_gunicorn_prepares_the_prometheus_folder(gunicorn_conf, tmp_path):
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old run")
    gunicorn_conf["on_starting"](server=None)
    assert list(folder.iterdir()) == []


def test_nginx_timeout_matches_gunicorn(gunicorn_conf):
    timeouts = re.findall(r"^\s*proxy_read_timeout\s+(\d+)s;\s*#\s*=\s*gunicorn", NGINX_CONF.read_text(), re.MULTILINE)
    assert timeouts == [str(gunicorn_conf["timeout"])]


# --- nginx ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx():
    return NGINX_CONF.read_text()


def locations(conf: str) -> dict[str, str]:
    """``location`` argument -> its block's body (the blocks here do not nest)."""
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"^\s*location\s+([^{]+)\{([^}]*)\}", conf, re.MULTILINE)}


def test_nginx_braces_balance_and_directives_end(nginx):
    body = "\n".join(line.split("#", 1)[0] for line in nginx.splitlines())
    assert body.count("{") == body.count("}")
    for line in body.splitlines():
        line = line.strip()
        assert not line or line.endswith((";", "{", "}")), line


def test_nginx_site(nginx):
    blocks = locations(nginx)
    assert re.search(r"^\s*client_max_body_size\s+\S+;", nginx, re.MULTILINE)
    assert "alias" in blocks["/static/"] and str(settings.STATIC_ROOT).rsplit("/", 1)[-1] in blocks["/static/"]
    assert "deny all;" in blocks["= /metrics"], "/metrics must not be reachable through the public site"
    assert "proxy_pass http://skinsite;" in blocks["= /healthz"]
    main = blocks["/"]
    assert "proxy_pass http://skinsite;" in main
    assert "X-Forwarded-Proto $scheme" in main and "X-Forwarded-For $remote_addr" in main
    # Photos are encrypted at rest: nothing may serve stored files, not even an internal location.
    assert not any("internal;" in block for block in blocks.values())
