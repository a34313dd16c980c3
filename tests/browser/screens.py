"""What a member of staff does on the screens, in a few words each."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshots_directory() -> Path:
    """docs/screenshots when asked for (``POS_LOYALTY_SCREENSHOTS=1``: ``make screenshots``), the
    absolute path named there, or else one of this user's in the temporary directory: a test run
    leaves the documentation's pictures, and the git tree, as they are."""
    wanted = os.environ.get("POS_LOYALTY_SCREENSHOTS", "")
    if wanted == "1":
        directory = SCREENSHOTS
    elif os.path.isabs(wanted):
        directory = Path(wanted)
    else:
        directory = Path(tempfile.gettempdir()) / f"pos-loyalty-screenshots-{os.getuid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(page, name: str) -> None:
    """Keep a picture of this screen (NAME.png): for the documentation with ``make screenshots``."""
    page.screenshot(path=str(screenshots_directory() / f"{name}.png"), full_page=True)


def sign_in(page, username: str, password: str) -> None:
    page.goto("/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
