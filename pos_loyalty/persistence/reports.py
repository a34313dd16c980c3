"""Aggregate queries for the manager's reports and action lists."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import models as m


class Reports:
    def __init__(self, session: Session) -> None:
        self.s = session

    def points_outstanding(self) -> int:
        return int(self.s.scalar(select(func.coalesce(func.sum(m.Customer.balance), 0))) or 0)
