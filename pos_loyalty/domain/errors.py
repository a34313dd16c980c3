"""What can go wrong in the shop's terms. The edges translate these into HTTP problems or messages."""
from __future__ import annotations


class LoyaltyError(Exception):
    """Base class. ``field`` names the input at fault, where there is one."""

    status = 422

    def __init__(self, message: str, *, field: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class InvalidInput(LoyaltyError):
    """The request is well-formed but breaks a rule (422)."""


class NotFound(LoyaltyError):
    status = 404


class Conflict(LoyaltyError):
    """A duplicate, a replay with a different body, or a state that forbids the action (409)."""

    status = 409


class DuplicateKey(Conflict):
    """Another writer stored the same key first (a retried or concurrent request)."""


class InsufficientPoints(Conflict):
    def __init__(self, balance: int, cost: int) -> None:
        super().__init__(
            f"insufficient points: the balance is {balance} and the rewards cost {cost}",
            field="rewards",
            balance=balance,
            cost=cost,
        )


class Forbidden(LoyaltyError):
    status = 403
