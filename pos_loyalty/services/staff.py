"""Staff sign-in, lockout after repeated failures, and looking after staff logins.

Passwords are checked by ``access.verify_password`` (argon2id). A run of wrong passwords slows
each next attempt a little and, at ``MAX_FAILED_SIGN_INS``, locks the login for ``LOCK_FOR`` by
the shop's clock; a manager can unlock it sooner.

The audit log is read here (``audit_trail``), and every export of customers' data is noted in it
(``record_export``): the changes themselves are recorded by the use case that makes them.
"""
from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass
from typing import Any

from ..domain.errors import Conflict, Forbidden, InvalidInput, LoyaltyError, NotFound
from . import access
from .access import STAFF_ROLES, add_user, verify_password
from .context import Shop

MAX_FAILED_SIGN_INS = 5
LOCK_FOR = dt.timedelta(minutes=15)
SLOW_DOWN_STEP = 0.25  # seconds added to the answer for each wrong password in a row
SLOW_DOWN_CAP = 2.0
WRONG_CREDENTIALS = "the username or password is wrong"


@dataclass(frozen=True)
class StaffMember:
    """Who is signed in, as the screens need to know it."""

    id: int
    username: str
    role: str

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


class SignInRefused(LoyaltyError):
    """Wrong name or password, a locked login, or a disabled one. ``failures`` counts the wrong
    passwords in a row so far; ``locked_until`` is set while the login is locked."""

    status = 401

    def __init__(self, message: str, *, failures: int = 0, locked_until: dt.datetime | None = None) -> None:
        super().__init__(message, field="password")
        self.failures = failures
        self.locked_until = locked_until


def slow_down_for(failures: int) -> float:
    """How long to hold back the answer after this many wrong passwords in a row (seconds)."""
    return min(SLOW_DOWN_STEP * max(failures - 1, 0), SLOW_DOWN_CAP)


@functools.cache
def _nobody_hash() -> str:
    """Checked against when the username is unknown, so a wrong name costs as long as a wrong
    password: hashed by the same hasher, with the same cost, as every staff password."""
    return access.hash_password(secrets.token_urlsafe(16))


def _member(user) -> StaffMember:
    return StaffMember(user.id, user.username, user.role)


def _locked_message(shop: Shop, until: dt.datetime) -> str:
    local = until.astimezone(shop.timezone)
    return (
        f"too many wrong passwords: this login is locked until {local:%H:%M} "
        f"({int(LOCK_FOR.total_seconds() // 60)} minutes); a manager can unlock it sooner"
    )


def sign_in(shop: Shop, username: str, password: str) -> StaffMember:
    """The staff member, if the password is right and the login is neither locked nor disabled.

    The password is checked outside any write transaction: argon2id is slow on purpose, and on
    SQLite a write transaction would hold up every till's checkout meanwhile.
    """
    username = (username or "").strip()
    if not username or not password:
        raise SignInRefused("give your username and password")
    with shop.uow(read_only=True) as uow:
        user = uow.users.by_username(username)
        if user is not None:
            user_id, password_hash, locked_until = user.id, user.password_hash, user.locked_until
    if user is None:
        verify_password(_nobody_hash(), password)
        raise SignInRefused(WRONG_CREDENTIALS)
    if locked_until is not None and locked_until > shop.now():
        raise SignInRefused(_locked_message(shop, locked_until), locked_until=locked_until)
    right = verify_password(password_hash, password)
    with shop.uow() as uow:
        user = uow.users.by_username(username)
        if user is None or user.id != user_id:
            raise SignInRefused(WRONG_CREDENTIALS)
        now = shop.now()
        if user.locked_until is not None and user.locked_until > now:  # locked by another attempt meanwhile
            raise SignInRefused(_locked_message(shop, user.locked_until), locked_until=user.locked_until)
        if not right:
            raise _count_failure(uow, shop, user, now)
        if user.disabled_at is not None:
            raise SignInRefused("this login is disabled; ask a manager")
        if user.failed_logins or user.locked_until is not None:
            user.failed_logins, user.locked_until = 0, None
            uow.commit()
        return _member(user)


def _count_failure(uow, shop: Shop, user, now: dt.datetime) -> SignInRefused:
    """Count one more wrong password (committed) and say what it means for the next attempt."""
    failures = (user.failed_logins or 0) + 1
    if failures >= MAX_FAILED_SIGN_INS:
        user.failed_logins, user.locked_until = 0, now + LOCK_FOR
        uow.audit.record("sign-in", "user.lock", "user", user.username, None,
                         {"locked_until": user.locked_until.isoformat(), "failed_sign_ins": failures})
        uow.commit()
        return SignInRefused(_locked_message(shop, user.locked_until), failures=failures, locked_until=user.locked_until)
    user.failed_logins = failures
    uow.commit()
    left = MAX_FAILED_SIGN_INS - failures
    hint = f" ({left} more {'try' if left == 1 else 'tries'} before this login is locked for a while)" if failures >= 2 else ""
    return SignInRefused(WRONG_CREDENTIALS + hint, failures=failures)


def staff_member(shop: Shop, user_id: Any, username: Any) -> StaffMember | None:
    """The signed-in staff member for a session, or None if that login is gone or disabled."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not isinstance(username, str):
        return None
    with shop.uow(read_only=True) as uow:
        user = uow.users.by_username(username)
        if user is None or user.id != user_id or user.disabled_at is not None:
            return None
        return _member(user)


# -- looking after staff logins (the manager's users page) ------------------------------------------


def list_staff(shop: Shop) -> list[dict[str, Any]]:
    now = shop.now()
    with shop.uow(read_only=True) as uow:
        return [
            {
                "username": u.username,
                "role": u.role,
                "created_at": u.created_at,
                "disabled": u.disabled_at is not None,
                "locked_until": u.locked_until if u.locked_until is not None and u.locked_until > now else None,
                "failed_sign_ins": u.failed_logins or 0,
            }
            for u in uow.users.all()
        ]


def add_staff(shop: Shop, username: str, password: str, role: str, *, repeated: str, actor: str) -> None:
    """A new login; the password is typed twice on the form so a typo does not lock anyone out."""
    if role not in STAFF_ROLES:
        raise InvalidInput(f"the role is one of {', '.join(STAFF_ROLES)}", field="role")
    if password != repeated:
        raise InvalidInput("the two passwords differ", field="repeated")
    add_user(shop, username, password, role, actor=actor)


def _user_for_change(uow, username: str):
    user = uow.users.by_username((username or "").strip())
    if user is None:
        raise NotFound(f"there is no user {username!r}", field="username")
    return user


def unlock_staff(shop: Shop, username: str, *, actor: str) -> None:
    with shop.uow() as uow:
        user = _user_for_change(uow, username)
        before = {"locked_until": user.locked_until.isoformat() if user.locked_until else None, "failed_sign_ins": user.failed_logins}
        user.failed_logins, user.locked_until = 0, None
        uow.audit.record(actor, "user.unlock", "user", user.username, before, {"locked_until": None, "failed_sign_ins": 0})
        uow.commit()


def set_staff_disabled(shop: Shop, username: str, disabled: bool, *, actor: str) -> None:
    """Disable a login (someone left) or enable it again; nobody disables their own login."""
    with shop.uow() as uow:
        user = _user_for_change(uow, username)
        if disabled and user.username == actor:
            raise Forbidden("you cannot disable your own login", field="username")
        if (user.disabled_at is not None) == disabled:
            raise Conflict(f"this login is already {'disabled' if disabled else 'enabled'}", field="username")
        user.disabled_at = shop.now() if disabled else None
        uow.audit.record(actor, "user.disable" if disabled else "user.enable", "user", user.username,
                         {"disabled": not disabled}, {"disabled": disabled})
        uow.commit()


def audit_trail(shop: Shop, *, limit: int = 200) -> list[dict[str, Any]]:
    """The newest entries of the audit log first: who did what to which record, before and after."""
    limit = max(1, min(int(limit), 1000))
    with shop.uow(read_only=True) as uow:
        return [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "entity": e.entity,
                "entity_id": e.entity_id,
                "before": e.before,
                "after": e.after,
            }
            for e in uow.audit.recent(limit)
        ]


def record_export(shop: Shop, actor: str, action: str, entity: str, entity_id: str | None, details: dict[str, Any]) -> None:
    """Note in the audit log that customers' data left the system: who took it, which list or
    file, with what filters, and how many rows (never a row itself: the entry holds nothing
    personal, so an erasure has nothing in it to scrub).

    It is its own short transaction, written once the export has been read and before it is
    handed over: reading every customer of a chain must not hold the till's write lock (SQLite's
    writers queue on it), and an export whose entry cannot be written is not handed over."""
    actor = (actor or "").strip() if isinstance(actor, str) else ""
    if not actor or len(actor) > 100:
        raise InvalidInput("say who takes the export (up to 100 characters)", field="actor")
    with shop.uow() as uow:
        uow.audit.record(actor, action, entity, entity_id, None, details)
        uow.commit()
