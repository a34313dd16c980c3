"""The real server (``pos-loyalty serve`` under waitress) and the bare one, each in its own process."""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .measure import Client

LISTENING = re.compile(r"panel: http://127\.0\.0\.1:(\d+)/")
VENV_BIN = Path(sys.executable).parent


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    startup_seconds: float  # from launching the process to the first answered request
    log: Path
    log_offset: int = 0  # where this process's lines begin in the log
    started_at: float = 0.0

    def wait_for_log(self, text: str, timeout: float) -> float | None:
        """Seconds from launch until ``text`` appears in this process's log (None if it did not in time)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self.process.poll() is None:
            with open(self.log, "rb") as fh:
                fh.seek(self.log_offset)
                if text.encode() in fh.read():
                    return time.perf_counter() - self.started_at
            time.sleep(0.1)  # polling a log file, not waiting on a thread of ours
        return None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _launch(command: list[str], env: dict[str, str], log: Path, probe: str, probe_headers: dict[str, str] | None = None,
            timeout: float = 120.0) -> Served:
    """Start ``command``, wait for the line naming its port, then for the answer to ``probe``."""
    log_file = open(log, "ab")
    offset = log_file.tell()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL)
    log_file.close()
    port = None
    seen = b""
    deadline = started + timeout
    assert process.stdout is not None
    while port is None:
        if process.poll() is not None or time.perf_counter() > deadline:
            process.kill()
            raise RuntimeError(f"{' '.join(command[:3])} did not start; see {log}: {seen.decode(errors='replace')[-500:]}")
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            seen += chunk
            found = LISTENING.search(seen.decode(errors="replace"))
            if found:
                port = int(found.group(1))
    client = Client(port, probe_headers, timeout=timeout)
    try:
        status, body, _ = client.send("GET", probe)  # the socket listens already; this waits for the loop to answer
    finally:
        client.close()
    startup = time.perf_counter() - started
    if status != 200:
        process.kill()
        raise RuntimeError(f"{probe} answered {status}: {body[:300]!r}")
    return Served(process, port, startup, log, offset, started)


def product_env(data_dir: Path, database_url: str, *, scanner_url: str = "", run_daily_expiry: bool = True,
                threads: int = 8) -> dict[str, str]:
    """The till's settings, as a shop would set them in the environment."""
    from . import shop_model as S

    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update({
        "POS_LOYALTY_DATA_DIR": str(data_dir),
        "POS_LOYALTY_DATABASE_URL": database_url,
        "POS_LOYALTY_TIMEZONE": S.TIMEZONE,
        "POS_LOYALTY_CURRENCY": S.CURRENCY,
        "POS_LOYALTY_LOCALE": S.LOCALE,
        "POS_LOYALTY_CARD_PREFIX": S.CARD_PREFIX,
        "POS_LOYALTY_THREADS": str(threads),
        "POS_LOYALTY_RUN_DAILY_EXPIRY": "true" if run_daily_expiry else "false",
        "POS_LOYALTY_SCANNER_URL": scanner_url,
    })
    return env


def start_product(data_dir: Path, database_url: str, log: Path, **settings) -> Served:
    """``pos-loyalty serve`` with the shop's settings; started when its health check answers."""
    command = [str(VENV_BIN / "pos-loyalty"), "serve", "--host", "127.0.0.1", "--port", "0"]
    return _launch(command, product_env(data_dir, database_url, **settings), log, "/api/v1/health")


def start_floor(database_url: str, answer_file: Path, log: Path, *, threads: int = 8) -> Served:
    """The bare endpoint under the same server, with the same threads."""
    command = [sys.executable, "-m", "bench.floors", "--url", database_url, "--answer-file", str(answer_file),
               "--threads", str(threads)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return _launch(command, env, log, "/health")
