"""The ``pos-loyalty`` command as someone at the till's terminal runs it: a real process, against
the test's database."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMMAND = [sys.executable, "-m", "pos_loyalty.cli"]
PROCESS_TIMEOUT = 120  # generous: a busy machine; a healthy run takes a second or two


def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """This process's environment without its own POS_LOYALTY_* settings, on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update(POS_LOYALTY_DATABASE_URL=database_url, POS_LOYALTY_DATA_DIR=str(tmp_path / "cli-data"),
               POS_LOYALTY_TIMEZONE="Europe/Berlin")
    return env


def pos_loyalty(database_url: str, tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run the command with ``stdin`` piped in (so not a terminal), and wait for it."""
    return subprocess.run([*COMMAND, *args], env=cli_env(database_url, tmp_path), input=stdin, capture_output=True,
                          text=True, encoding="utf-8", timeout=PROCESS_TIMEOUT)
