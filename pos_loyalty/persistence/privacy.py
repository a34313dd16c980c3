"""Queries behind a customer's data export and erasure.

A customer's rows are found by their id, and also through their sales: a rating left on a sale
that was anonymous at the time and claimed with their card later is theirs too. Audit entries
"about" them name the customer, one of their cards, or one of their follow-ups; entries about
something else that merely quote one of their identifiers (an email, a phone number, a card
number, their full name) are found by searching the payload's JSON text.
"""
from __future__ import annotations

import json
from typing import Sequence

from sqlalchemy import Text, and_, cast, delete, false, func, or_, select, update
from sqlalchemy.orm import Session

from . import models as m


def _json_forms(text: str) -> set[str]:
    """How a text appears inside stored JSON: escaped for ASCII (rows the standard library wrote)
    or not (``jsoncodec``, orjson's UTF-8)."""
    return {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


class Privacy:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _their_sales(self, customer_id: int):
        return select(m.Transaction.id).where(m.Transaction.customer_id == customer_id)

    def cards(self, customer_id: int) -> list[m.Card]:
        return list(self.s.scalars(select(m.Card).where(m.Card.customer_id == customer_id).order_by(m.Card.issued_at, m.Card.number)))

    def transactions(self, customer_id: int) -> list[m.Transaction]:
        return list(
            self.s.scalars(
                select(m.Transaction).where(m.Transaction.customer_id == customer_id).order_by(m.Transaction.occurred_at, m.Transaction.id)
            )
        )

    def lines(self, customer_id: int) -> list[m.TransactionLine]:
        return list(
            self.s.scalars(
                select(m.TransactionLine)
                .where(m.TransactionLine.transaction_id.in_(self._their_sales(customer_id)))
                .order_by(m.TransactionLine.transaction_id, m.TransactionLine.line_no)
            )
        )

    def redemptions(self, customer_id: int) -> list[m.Redemption]:
        return list(
            self.s.scalars(
                select(m.Redemption).where(m.Redemption.transaction_id.in_(self._their_sales(customer_id))).order_by(m.Redemption.id)
            )
        )

    def ledger(self, customer_id: int) -> list[m.LedgerEntry]:
        return list(self.s.scalars(select(m.LedgerEntry).where(m.LedgerEntry.customer_id == customer_id).order_by(m.LedgerEntry.id)))

    def products(self, customer_id: int) -> list[m.CustomerProduct]:
        return list(
            self.s.scalars(select(m.CustomerProduct).where(m.CustomerProduct.customer_id == customer_id).order_by(m.CustomerProduct.sku))
        )

    def feedback(self, customer_id: int) -> list[m.Feedback]:
        return list(
            self.s.scalars(
                select(m.Feedback)
                .where(or_(m.Feedback.customer_id == customer_id, m.Feedback.transaction_id.in_(self._their_sales(customer_id))))
                .order_by(m.Feedback.id)
            )
        )

    def follow_ups(self, customer_id: int) -> list[m.FollowUp]:
        theirs = self._their_sales(customer_id)
        return list(
            self.s.scalars(
                select(m.FollowUp)
                .where(or_(m.FollowUp.customer_id == customer_id, m.FollowUp.transaction_id.in_(theirs)))
                .order_by(m.FollowUp.id)
            )
        )

    def audit_about(self, customer_id: int, card_numbers: Sequence[str], follow_up_ids: Sequence[int]) -> list[m.AuditEntry]:
        a = m.AuditEntry
        about = [and_(a.entity == "customer", a.entity_id == str(customer_id))]
        if card_numbers:
            about.append(and_(a.entity == "card", a.entity_id.in_(list(card_numbers))))
        if follow_up_ids:
            about.append(and_(a.entity == "follow_up", a.entity_id.in_([str(i) for i in follow_up_ids])))
        return list(self.s.scalars(select(a).where(or_(*about)).order_by(a.id)))

    def audit_quoting(self, texts: Sequence[str]) -> list[m.AuditEntry]:
        """Audit entries whose entity id or JSON payload contains any of these texts (case as stored)."""
        a = m.AuditEntry
        forms = sorted({form for text in texts if text for form in _json_forms(text)})
        if not forms:
            return []
        payload = [
            cast(column, Text).contains(form, autoescape=True) for column in (a.before, a.after) for form in forms
        ]
        return list(self.s.scalars(select(a).where(or_(a.entity_id.in_(list(texts)), *payload, false())).order_by(a.id)))

    # -- erasure -----------------------------------------------------------------------------------

    def delete_cards(self, customer_id: int) -> int:
        return self.s.execute(delete(m.Card).where(m.Card.customer_id == customer_id)).rowcount or 0

    def ledger_reasons(self, customer_id: int, texts: Sequence[str]) -> list[tuple[int, int, str, str]]:
        """(id, customer id, cause, reason) of each ledger entry with a reason that is the
        customer's own, or that quotes one of these texts (any customer's: a transfer noted on a
        relative's adjustment), ignoring case."""
        e = m.LedgerEntry
        quoting = [func.lower(e.reason).contains(text.lower(), autoescape=True) for text in texts if text]
        rows = self.s.execute(
            select(e.id, e.customer_id, e.cause, e.reason)
            .where(e.reason.is_not(None), or_(e.customer_id == customer_id, *quoting))
            .order_by(e.id)
        )
        return [(r.id, r.customer_id, r.cause, r.reason) for r in rows]

    def blank_ledger_reasons(self, entry_ids: Sequence[int], erased: str) -> int:
        """Set these entries' reason to ``erased``: the one change to the ledger its triggers let
        through (migration 0010)."""
        if not entry_ids:
            return 0
        statement = update(m.LedgerEntry).where(m.LedgerEntry.id.in_(list(entry_ids))).values(reason=erased)
        return self.s.execute(statement, execution_options={"synchronize_session": False}).rowcount or 0

    def delete_products(self, customer_id: int) -> int:
        return self.s.execute(delete(m.CustomerProduct).where(m.CustomerProduct.customer_id == customer_id)).rowcount or 0
