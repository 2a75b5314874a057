"""Print `export` lines for PostgreSQL and Redis on their default local addresses, when they answer.

bin/test evaluates the output before the settings are loaded, so a developer machine (or CI)
that runs the usual local servers tests against them without configuring anything. Explicit
DATABASE_URL / REDIS_URL / CELERY_BROKER_URL always win; a server that does not accept the
default credentials is simply not used (the run then falls back and says so).
Set TEST_SERVICES=embedded to skip detection and force SQLite + the filesystem broker.
"""

import os
import shlex

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def postgres_answers(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable as is"
        return False


def redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


def main() -> None:
    if os.environ.get("TEST_SERVICES") == "embedded":
        return
    if not os.environ.get("DATABASE_URL") and postgres_answers(DEFAULT_DATABASE_URL):
        print(f"export DATABASE_URL={shlex.quote(DEFAULT_DATABASE_URL)}")
        print("echo 'Found PostgreSQL on 127.0.0.1:5432 (DATABASE_URL was not set): using it.'")
    if not (os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL")) and redis_answers(DEFAULT_REDIS_URL):
        print(f"export REDIS_URL={shlex.quote(DEFAULT_REDIS_URL)}")
        print("echo 'Found Redis on 127.0.0.1:6379 (REDIS_URL was not set): using it.'")


if __name__ == "__main__":
    main()
