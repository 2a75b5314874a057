"""Say which database and Celery broker the test suite will use, and check that they answer.

Run by bin/test with the project's settings, so what it prints is what the tests get
(environment variables and a .env file included). Services are used only when configured
(DATABASE_URL, REDIS_URL or CELERY_BROKER_URL) or found answering on their default local
addresses by bin/_detect_services.py; a server that listens but refuses those defaults is
mentioned, not used. Exits 1 when a configured service cannot be reached:
a run that was asked to use PostgreSQL and Redis must not quietly pass on SQLite.
"""

import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skinsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from kombu import Connection  # noqa: E402


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    problems = []
    forced = os.environ.get("TEST_SERVICES") == "embedded"
    why_db = "TEST_SERVICES=embedded" if forced else "DATABASE_URL is not set and no PostgreSQL answered on 127.0.0.1:5432"
    why_broker = ("TEST_SERVICES=embedded" if forced else
                  "REDIS_URL / CELERY_BROKER_URL are not set and no Redis answered on 127.0.0.1:6379")
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        print(f"Database: SQLite, in memory (fallback: {why_db})")
        if listening(5432):
            print("  note: something listens on 127.0.0.1:5432; to test against PostgreSQL set e.g.\n"
                  "        DATABASE_URL=postgres://postgres@127.0.0.1:5432/test (as .ci/run does)")
    else:
        test_name = db.get("TEST", {}).get("NAME") or f"test_{db['NAME']}"
        print(f"Database: {connection.display_name} at {db['HOST'] or 'localhost'}:{db['PORT'] or 'default port'}, "
              f"test database {test_name} (from DATABASE_URL)")
        try:
            connection.ensure_connection()
            connection.close()
        except Exception as exc:  # noqa: BLE001 - report any driver error the same way
            problems.append(f"the database in DATABASE_URL does not answer: {exc}")

    broker = settings.CELERY_BROKER_URL
    if broker.startswith("filesystem://"):
        print(f"Broker:   Celery filesystem broker in {settings.BROKER_DIR} "
              f"(fallback: {why_broker})")
        if listening(6379):
            print("  note: something listens on 127.0.0.1:6379; to test against Redis set e.g.\n"
                  "        REDIS_URL=redis://127.0.0.1:6379/0 (as .ci/run does)")
    else:
        source = "CELERY_BROKER_URL" if os.environ.get("CELERY_BROKER_URL") else "REDIS_URL"
        with Connection(broker, connect_timeout=5) as conn:
            name = {"redis": "Redis", "rediss": "Redis over TLS"}.get(conn.transport.driver_type,
                                                                   conn.transport.driver_type)
            print(f"Broker:   {name} at {conn.as_uri(mask='')} (from {source})")
            try:
                conn.ensure_connection(max_retries=1)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"the broker in {source} does not answer: {exc}")

    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
