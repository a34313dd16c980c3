"""Till tokens and staff logins."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, InvalidHashError

from ..domain.errors import Conflict, InvalidInput, NotFound
from .context import Shop, UnitOfWork

STAFF_ROLES = ("manager", "cashier")
_hasher = PasswordHasher()  # argon2id with the library's memory-hard defaults


@dataclass(frozen=True)
class TillIdentity:
    id: int
    name: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_till(shop: Shop, name: str) -> tuple[TillIdentity, str]:
    """Register a till; returns it and its bearer token (shown once, stored only as a hash)."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise InvalidInput("a till needs a name of up to 64 characters", field="name")
    token = secrets.token_urlsafe(32)
    with shop.uow() as uow:
        existing = uow.tills.by_name(name)
        if existing is not None and existing.revoked_at is None:
            raise Conflict(f"a till named {name!r} already exists; revoke it first to issue a new token", field="name")
        if existing is not None:
            existing.token_hash, existing.revoked_at = hash_token(token), None
            till = existing
        else:
            till = uow.tills.add(name, hash_token(token))
        uow.audit.record("cli", "till.add", "till", name)
        uow.commit()
        return TillIdentity(till.id, till.name), token


def revoke_till(shop: Shop, name: str) -> None:
    with shop.uow() as uow:
        till = uow.tills.by_name(name)
        if till is None or till.revoked_at is not None:
            raise NotFound(f"there is no active till named {name!r}", field="name")
        till.revoked_at = shop.now()
        uow.audit.record("cli", "till.revoke", "till", name)
        uow.commit()


class TokenRefused(Exception):
    """No active till holds the bearer token a use case was handed to check in its own unit of
    work (``till_of_token``). Nothing was written. Not a ``LoyaltyError``: a use case that answers
    a refused request from what is stored under its id (a retried sale) must not answer this one."""


def authenticate_till(shop: Shop, token: str) -> TillIdentity | None:
    with shop.uow(read_only=True, one_read=True) as uow:
        try:
            return till_of_token(uow, token)
        except TokenRefused:
            return None


def till_of_token(uow: UnitOfWork, token: str) -> TillIdentity:
    """The till holding this bearer token, read in the caller's unit of work, as its first read;
    ``TokenRefused`` if no active till holds it.

    The counter's checkout and card lookup check the token this way rather than in a unit of work
    of their own (``authenticate_till``): on SQLite, a connection that reads after another
    connection's commit first re-reads the pages it had cached, ~30 µs, and a checkout then paid
    that on the till check's connection as well as on the sale's. Revocation is as immediate as
    before: the check sees what was committed when it runs."""
    return till_of_token_later(uow, token).get()


def till_of_token_later(uow: UnitOfWork, token: str):
    """``till_of_token`` as a read to be had later (``get()``), so that on PostgreSQL it goes to
    the server in one round trip with the unit of work's first other reads (``uow.in_one_trip``)."""
    return uow.tills.active_by_token_hash_later(hash_token(token)).then(_identity_or_refused)


def _identity_or_refused(till) -> TillIdentity:
    if till is None:
        raise TokenRefused("no active till holds this token")
    return TillIdentity(till.id, till.name)


def add_user(shop: Shop, username: str, password: str, role: str, *, actor: str = "cli") -> None:
    username = (username or "").strip()
    if not username or len(username) > 64:
        raise InvalidInput("a username has 1 to 64 characters", field="username")
    if role not in STAFF_ROLES:
        raise InvalidInput(f"the role is one of {', '.join(STAFF_ROLES)}", field="role")
    if len(password or "") < 8:
        raise InvalidInput("a password has at least 8 characters", field="password")
    with shop.uow() as uow:
        if uow.users.by_username(username) is not None:
            raise Conflict(f"the user {username!r} already exists", field="username")
        uow.users.add(username, hash_password(password), role)
        uow.audit.record(actor, "user.add", "user", username, None, {"role": role})
        uow.commit()


def hash_password(password: str) -> str:
    """An argon2id hash of the password, at the hasher's memory-hard cost."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
