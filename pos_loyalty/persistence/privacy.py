"""Queries behind a customer's data export and erasure."""
from __future__ import annotations

from sqlalchemy.orm import Session


class Privacy:
    def __init__(self, session: Session) -> None:
        self.s = session
