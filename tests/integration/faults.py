"""Tools to break things for real in test_fault_tolerance.py: a Redis that goes away, worker processes to kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit


# What the fault tests measured, printed at the end of the run (tests/integration/conftest.py).
FAULT_METRICS: list[str] = []


class TcpSwitch:
    """A TCP forwarder in front of Redis. ``down()`` drops every connection and refuses new ones, as a
    stopped Redis does; ``hang()`` accepts connections and never answers, as a hung Redis or a dead
    network path does; ``up()`` forwards again on the same port. Clients are pointed at ``url``."""

    def __init__(self, target_url: str):
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._silent = False

    def up(self) -> None:
        self.down()
        self._silent = False
        self._listen()

    def hang(self) -> None:
        self.down()
        self._silent = True
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener, self._stop = listener, threading.Event()
        self._acceptor = threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True)
        self._acceptor.start()

    def down(self) -> None:
        self._stop.set()
        if self._listener is not None:
            # The accept thread must be out of its poll before the port is really closed.
            self._acceptor.join(5)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def _accept(self, listener, stop):
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._silent:
                with self._lock:
                    self._sockets.add(client)  # held open, never read: the peer waits for its timeout
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if stop.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def reset_producer_pool(app) -> None:
    """Make the app open new broker connections for sending (after its broker URL changed)."""
    app._pool = None
    app.amqp._producer_pool = None


def live_database_url(connection) -> str:
    """A DATABASE_URL for the test database itself, so another process sees the test's committed rows."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}"


class WorkerProcess:
    """``celery -A tests.integration.faultworker worker --pool=prefork`` as a subprocess (own process group)."""

    def __init__(self, *, queue: str, hold_dir: Path, log: Path, env: dict[str, str], concurrency: int = 1):
        self.hold_dir = hold_dir
        self.log_path = log
        command = [sys.executable, "-m", "celery", "-A", "tests.integration.faultworker", "worker",
                   "--pool=prefork", f"--concurrency={concurrency}", "-Q", queue, "-l", "info",
                   "-n", f"fault-{uuid.uuid4().hex[:8]}@%h", "--without-heartbeat", "--without-mingle",
                   "--without-gossip"]
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, env={**os.environ, **env, "FAULT_HOLD_DIR": str(hold_dir)},
                                     cwd=Path(__file__).resolve().parents[2], stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_held(self, timeout: float) -> int:
        """The pid of the pool process that reached the hold (claimed and classified, not stored)."""
        started = self.hold_dir / "started"
        deadline = time.monotonic() + timeout
        while not started.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"the worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no task reached the hold in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)
        pid = int(started.read_text())
        started.unlink()
        return pid

    def release(self) -> None:
        for held in self.hold_dir.glob("held-*"):
            held.unlink()

    def kill_all(self) -> None:
        """SIGKILL the main process and its pool children: the machine is gone."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill_all()
            except ProcessLookupError:
                pass
        self._log.close()

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]
