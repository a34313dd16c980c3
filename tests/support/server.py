"""The real service, run as its own process, for tests that need a till's-eye view of it.

* :func:`start_till` runs ``pos-loyalty serve --port 0`` on a database the test prepared, reads
  the port it prints and waits (a bounded number of connection attempts, no sleeping) until
  ``/api/v1/health`` answers; :class:`RunningTill` sends requests and stops or kills it.
* :class:`ForkServer` starts the same ``serve`` command in a forked copy of a process that has
  already imported the service, so a crash test can start it hundreds of times in seconds
  rather than minutes (the imports are most of a cold start). What runs after the fork is the
  command's own code: settings from the environment, ``create_app``, the schema check, waitress.
* :func:`register_till` gives the test a till token, stored in the database as a till would.
* :func:`call` is one plain ``http.client`` request, answering ``(status, json-or-text)``.

Everything the server logs goes to a file the test can read (:attr:`RunningTill.log_text`).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("pos-loyalty")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "pos_loyalty.cli"]
START_TIMEOUT = 60.0  # generous: a busy CI machine; a healthy start takes well under a second
REQUEST_TIMEOUT = 60.0
API_LINE = re.compile(r"API: http://127\.0\.0\.1:(\d+)/api/v1/")
HEALTH_ATTEMPTS = 200


def till_env(data_dir: Path, database_url: str, *, extra: dict[str, str] | None = None, **settings: str) -> dict[str, str]:
    """The environment of a till's service: this test's data directory and database, no daily
    expiry thread, and nothing inherited from the machine's own ``POS_LOYALTY_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update(
        {
            "POS_LOYALTY_DATA_DIR": str(data_dir),
            "POS_LOYALTY_DATABASE_URL": database_url,
            "POS_LOYALTY_RUN_DAILY_EXPIRY": "false",
            "POS_LOYALTY_TIMEZONE": "Europe/Berlin",
            "XDG_DATA_HOME": str(Path(data_dir).parent),
            "PYTHONUNBUFFERED": "1",
            # this checkout first, whatever state the virtualenv's editable install is in
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        }
    )
    env.update({f"POS_LOYALTY_{k.upper()}": v for k, v in settings.items()})
    env.update(extra or {})
    return env


def register_till(database_url: str, data_dir: Path, name: str = "till-1") -> str:
    """Register a till on the database the server will use; returns its bearer token."""
    from pos_loyalty.app import build_services
    from pos_loyalty.config import load_settings
    from pos_loyalty.services.access import add_till

    services = build_services(load_settings({"data_dir": data_dir, "database_url": database_url}))
    try:
        return add_till(services.shop, name)[1]
    finally:
        services.db.dispose()


# -- talking to it -----------------------------------------------------------------------------------


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[int, Any]:
    """One request on a fresh connection; the answer's JSON (or its text when it is not JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return send(conn, method, path, body, token=token, headers=headers, raw=raw)
    finally:
        conn.close()


def send(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None, *, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    """One request on a kept-alive connection (a till's sales software holds one open)."""
    sent = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    if token:
        sent["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=data, headers=sent)
    response = conn.getresponse()
    payload = response.read()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload.decode("utf-8", "replace")


def wait_until_healthy(port: int, process: "subprocess.Popen | None" = None, attempts: int = HEALTH_ATTEMPTS) -> dict:
    """Ask ``/api/v1/health`` until it answers 200: a bounded number of connection attempts, each
    of which blocks until the server accepts or refuses (no sleeping between them)."""
    last: Any = None
    for _ in range(attempts):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server stopped with status {process.returncode} before it answered")
        try:
            status, body = call(port, "GET", "/api/v1/health", timeout=START_TIMEOUT)
        except OSError as exc:  # not accepting yet
            last = exc
            continue
        if status == 200:
            return body
        last = (status, body)
    raise RuntimeError(f"/api/v1/health did not answer 200 after {attempts} attempts: {last!r}")


class PrintedLines:
    """The lines a process prints on a pipe, read as they come (waiting on the pipe with select)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._next = 0
        self._partial = b""

    def until(self, pattern: re.Pattern, timeout: float = START_TIMEOUT) -> re.Match:
        """The first line not looked at yet that matches ``pattern``; lines passed over stay in
        :attr:`lines`."""
        deadline = time.monotonic() + timeout
        while True:
            while self._next < len(self.lines):
                line = self.lines[self._next]
                self._next += 1
                found = pattern.search(line)
                if found:
                    return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line matching {pattern.pattern!r} was printed: {self.lines!r}")
            ready, _, _ = select.select([self.stream.fileno()], [], [], left)
            if ready:
                self._read()

    def _read(self) -> None:
        chunk = os.read(self.stream.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"the process closed its output; it printed: {self.lines!r}")
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        self.lines.extend(line.decode("utf-8", "replace") for line in complete)

    def rest(self) -> None:
        """Read whatever is left once the process has ended."""
        remaining = self._partial + self.stream.read()
        self._partial = b""
        self.lines.extend(remaining.decode("utf-8", "replace").splitlines())


# -- a cold start: the command exactly as an installer runs it ----------------------------------------


@dataclass
class RunningTill:
    """A ``pos-loyalty serve`` process on 127.0.0.1 and where its output goes."""

    process: subprocess.Popen
    port: int
    log_path: Path
    printed: PrintedLines

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return call(self.port, method, path, body, **kw)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=START_TIMEOUT)
        finally:
            self._drain()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=START_TIMEOUT)
        self._drain()

    def _drain(self) -> None:
        if not self.process.stdout.closed:
            self.printed.rest()
            self.process.stdout.close()

    def log_text(self) -> str:
        """Everything the server printed and logged so far (standard output and standard error)."""
        return "\n".join(self.printed.lines) + "\n" + self.log_path.read_text(errors="replace")


def start_till(env: dict[str, str], log_path: Path) -> RunningTill:
    """``pos-loyalty serve --port 0`` with ``env``; returns once its health check answers."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--port", "0"], env=env, cwd=REPO, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=log,
        )
    till = RunningTill(process, 0, log_path, PrintedLines(process.stdout))
    try:
        till.port = int(till.printed.until(API_LINE).group(1))
        wait_until_healthy(till.port, process)
    except Exception as exc:
        till.kill()
        raise RuntimeError(f"pos-loyalty serve did not start: {exc}\n{till.log_text()[-3000:]}") from exc
    return till


# -- warm starts: the same command in a forked, already-imported process --------------------------------


@dataclass
class ForkedTill:
    pid: int
    port: int


FORKED_OR_LISTENING = re.compile(r"^forked (\d+)$|" + API_LINE.pattern)


class ForkServer:
    """A helper process that has imported the service and forks ``pos-loyalty serve --port 0`` on
    request. ``start()`` returns once the new server answers its health check; ``kill(till)``
    sends it SIGKILL and returns once the process is gone (reaped by the helper).

    Use as a context manager: on leaving, any server still running is killed and the helper ends.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.server", "fork-server"], env=env, cwd=REPO,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            )
        self.printed = PrintedLines(self._process.stdout)
        self._running: set[int] = set()
        try:
            self.printed.until(re.compile(r"^ready$"))
        except Exception as exc:
            self._process.kill()
            self._process.wait()
            self._process.stdout.close()
            raise RuntimeError(f"the fork server did not start: {exc}\n{self.log_text()[-3000:]}") from exc

    def __enter__(self) -> "ForkServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            for pid in list(self._running):
                self.kill(ForkedTill(pid, 0))
        finally:
            if self._process.poll() is None:
                self._process.stdin.close()
                try:
                    self._process.wait(timeout=START_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process.stdout.close()

    def _ask(self, command: str) -> None:
        self._process.stdin.write(command.encode() + b"\n")
        self._process.stdin.flush()

    def start(self) -> ForkedTill:
        self._ask("serve")
        pid = port = None
        while pid is None or port is None:
            found = self.printed.until(FORKED_OR_LISTENING)
            if found.group(1):
                pid = int(found.group(1))
                self._running.add(pid)
            else:
                port = int(found.group(2))
        till = ForkedTill(pid, port)
        wait_until_healthy(port)
        return till

    def kill(self, till: ForkedTill) -> None:
        """SIGKILL: no clean-up runs, as when a process is pulled from under the till."""
        try:
            os.kill(till.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._ask(f"reap {till.pid}")
        self.printed.until(re.compile(rf"^reaped {till.pid}\b"))
        self._running.discard(till.pid)

    def log_text(self) -> str:
        return "\n".join(self.printed.lines) + "\n" + self.log_path.read_text(errors="replace")


def _warm_up(scratch: str) -> None:  # pragma: no cover - runs in the helper process
    """Import everything the service imports and run a checkout once on a scratch database, so
    a forked server does not pay for what any process pays only once (imports, mapper set-up)."""
    from sqlalchemy import create_engine

    from pos_loyalty.app import create_app
    from pos_loyalty.persistence.models import Base
    from pos_loyalty.services.access import add_till
    from pos_loyalty.services.customers import enrol_customer

    url = f"sqlite:///{scratch}/scratch.db"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app({"data_dir": scratch, "database_url": url, "run_daily_expiry": False})
    services = app.extensions["pos_loyalty"]
    try:
        token = add_till(services.shop, "warm-up")[1]
        card = enrol_customer(services.shop, {"name": "Warm Up"})["cards"][0]["number"]
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        client.get("/api/v1/health")
        sale = {"id": "W-1", "occurred_at": "2026-01-01T12:00:00+00:00", "currency": services.settings.currency,
                "card_number": card, "lines": [{"sku": "W", "description": "w", "quantity": 1, "unit_price": 100}]}
        client.post("/api/v1/transactions", json=sale, headers=headers)
        client.post("/api/v1/transactions/W-1/returns", headers=headers,
                    json={"id": "W-2", "occurred_at": "2026-01-01T13:00:00+00:00", "lines": [{"sku": "W", "quantity": 1}]})
    finally:
        services.stop_devices()
        services.db.dispose()


def _fork_server_main() -> None:  # pragma: no cover - runs in the helper process
    """Import the service once, then serve ``serve`` and ``reap PID`` commands read from stdin."""
    import tempfile

    from pos_loyalty.cli import main
    from pos_loyalty.persistence.migrate import head_revision

    with tempfile.TemporaryDirectory() as scratch:
        _warm_up(scratch)
    import waitress.server  # noqa: F401

    import pos_loyalty.cli.server  # noqa: F401
    import pos_loyalty.jobs  # noqa: F401
    import pos_loyalty.wsgi_logging  # noqa: F401

    head_revision()  # parse the migration scripts once
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for command in sys.stdin:
        word, _, arg = command.strip().partition(" ")
        if word == "serve":
            out.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                    main(["serve", "--port", "0"], prog_name="pos-loyalty")
                    code = 0
                except SystemExit as stop:
                    code = stop.code if isinstance(stop.code, int) else 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            out.write(f"forked {pid}\n")
        elif word == "reap":
            _, status = os.waitpid(int(arg), 0)
            out.write(f"reaped {arg} {status}\n")
        out.flush()


if __name__ == "__main__" and sys.argv[1:] == ["fork-server"]:
    _fork_server_main()
