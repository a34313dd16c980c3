"""``pos-loyalty users add`` as the person setting up a till runs it: a real process each time.

The password comes from standard input when it is piped in (a setup script), or is typed twice
at a hidden prompt on a terminal; either way the new login then signs in to the screens its role
opens. A role the shop does not have is refused and nobody is added.
"""
from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time

from pos_loyalty.services.staff import list_staff
from tests.support.cli import COMMAND, PROCESS_TIMEOUT, cli_env, pos_loyalty
from tests.support.staff import Staff

PASSWORD = "flat-white-42"


class Terminal:
    """The command on a terminal of its own (a pseudo-terminal): what it writes is read from the
    terminal's other end, and what is typed there is what it reads."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.master, terminal = os.openpty()
        self.screen = b""
        self.seen = 0  # how much of the screen the test has read (``wait_for`` looks after it)
        try:
            self.process = subprocess.Popen(
                [*COMMAND, *args], env=env, stdin=terminal, stdout=terminal, stderr=terminal,
                start_new_session=True,  # never the terminal pytest runs in
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # this one, as a login's would be
            )
        finally:
            os.close(terminal)  # the command holds its end: reading ours ends when it exits

    def _read(self, timeout: float) -> bool:
        """What the command wrote within ``timeout`` seconds; False once it has closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every process holding the terminal is gone
            return False
        self.screen += chunk
        return bool(chunk)

    def wait_for(self, text: str) -> None:
        """Read until ``text`` appears on the screen after what was already seen (a prompt), as
        a person waits to see it."""
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while (found := self.screen.find(text.encode(), self.seen)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"{text!r} never appeared; the screen shows {self.screen.decode(errors='replace')!r}")
        self.seen = found + len(text.encode())

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self) -> tuple[int, str]:
        """Wait for the command to end: its exit status and everything the terminal showed."""
        while self._read(PROCESS_TIMEOUT):
            pass
        status = self.process.wait(PROCESS_TIMEOUT)
        os.close(self.master)
        return status, self.screen.decode(errors="replace").replace("\r\n", "\n")


def staff(shop) -> dict[str, str]:
    return {s["username"]: s["role"] for s in list_staff(shop)}


def signs_in_to(app, username: str, password: str) -> str:
    """Where the sign-in form sends this login: the panel for a manager, the till for a cashier."""
    r = Staff(app.test_client()).sign_in(username, password)
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.location


def test_a_manager_added_with_the_password_piped_in_signs_in_to_the_panel(app, shop, database_url, tmp_path):
    done = pos_loyalty(database_url, tmp_path, "users", "add", "mia", "--role", "manager", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "user 'mia' added as manager"
    assert PASSWORD not in done.stdout + done.stderr
    assert staff(shop) == {"mia": "manager"}
    assert signs_in_to(app, "mia", PASSWORD) == "/panel/"
    assert Staff(app.test_client()).sign_in("mia", "not-the-password").status_code == 401


def test_a_cashier_added_at_the_terminal_types_the_password_twice_unseen_and_signs_in_to_the_till(
    app, shop, database_url, tmp_path
):
    terminal = Terminal(cli_env(database_url, tmp_path), "users", "add", "anna", "--role", "cashier")
    terminal.wait_for("password: ")
    terminal.type(PASSWORD)
    terminal.wait_for("Repeat for confirmation: ")
    terminal.type(PASSWORD)
    status, screen = terminal.finish()

    assert status == 0, screen
    assert "user 'anna' added as cashier" in screen
    assert PASSWORD not in screen  # the terminal did not echo what was typed
    assert staff(shop) == {"anna": "cashier"}
    assert signs_in_to(app, "anna", PASSWORD) == "/cashier"
    cashier = Staff(app.test_client())
    cashier.sign_in("anna", PASSWORD)
    assert cashier.get("/panel/").status_code == 403  # a cashier's login does not open the panel


def test_two_different_passwords_at_the_terminal_are_asked_for_again(app, shop, database_url, tmp_path):
    terminal = Terminal(cli_env(database_url, tmp_path), "users", "add", "anna", "--role", "cashier")
    terminal.wait_for("password: ")
    terminal.type(PASSWORD)
    terminal.wait_for("Repeat for confirmation: ")
    terminal.type(PASSWORD + "!")
    terminal.wait_for("Error: The two entered values do not match.")
    assert staff(shop) == {}  # nothing is saved while the command is still asking
    terminal.wait_for("password: ")  # asked again
    terminal.type(PASSWORD)
    terminal.wait_for("Repeat for confirmation: ")
    terminal.type(PASSWORD)
    status, screen = terminal.finish()
    assert status == 0, screen
    assert signs_in_to(app, "anna", PASSWORD) == "/cashier"


def test_a_role_the_shop_does_not_have_is_refused_and_nobody_is_added(app, shop, database_url, tmp_path):
    done = pos_loyalty(database_url, tmp_path, "users", "add", "max", "--role", "admin", stdin=PASSWORD + "\n")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Error: Invalid value for '--role': 'admin' is not one of 'manager', 'cashier'." in done.stderr
    assert staff(shop) == {}
    assert Staff(app.test_client()).sign_in("max", PASSWORD).status_code == 401
