"""``pos-loyalty till``, as the person looking after the tills runs it: a real process each time.

A till that is stolen or retired is revoked by name; its token stops working at once, in the
service already running, and the other tills carry on.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pos_loyalty.app import create_app

EXE = Path(sys.executable).with_name("pos-loyalty")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "pos_loyalty.cli"]
PROCESS_TIMEOUT = 120  # generous: a busy CI machine; a healthy run takes a few seconds


def till_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update({"POS_LOYALTY_DATA_DIR": str(data_dir), "XDG_DATA_HOME": str(data_dir.parent)})
    return env


def pos_loyalty(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def token_of(printed: str) -> str:
    """The token `till add` prints on its last line."""
    return printed.strip().splitlines()[-1].strip()


def test_a_revoked_till_s_token_is_refused_at_once_and_the_other_tills_carry_on(tmp_path):
    data_dir = tmp_path / "till"
    env = till_env(data_dir)
    ok(pos_loyalty(env, "init"))
    front = token_of(ok(pos_loyalty(env, "till", "add", "front")))
    back = token_of(ok(pos_loyalty(env, "till", "add", "back")))

    app = create_app({"data_dir": data_dir, "testing": True, "run_daily_expiry": False})  # the service, already running
    client = app.test_client()

    def rewards(token: str):
        return client.get("/api/v1/rewards", headers={"Authorization": f"Bearer {token}"})

    try:
        assert rewards(front).status_code == 200 and rewards(back).status_code == 200

        assert "till 'front' revoked; its token no longer works" in ok(pos_loyalty(env, "till", "revoke", "front"))

        refused = rewards(front)
        assert refused.status_code == 401
        assert refused.content_type == "application/problem+json"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="pos-loyalty"'
        assert rewards(back).status_code == 200
    finally:
        app.extensions["pos_loyalty"].db.dispose()


def test_revoking_a_till_that_is_not_there_says_so_in_one_line(tmp_path):
    env = till_env(tmp_path / "till")
    ok(pos_loyalty(env, "init"))
    ok(pos_loyalty(env, "till", "add", "front"))
    ok(pos_loyalty(env, "till", "revoke", "front"))
    for name in ("front", "nowhere"):  # revoked already, and never added
        result = pos_loyalty(env, "till", "revoke", name)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [f"Error: name: there is no active till named {name!r}"]
