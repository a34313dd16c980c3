"""Visit ratings, and the follow-ups a poor one opens until someone resolves them."""
from __future__ import annotations

from typing import Any

from ..domain.errors import Conflict, InvalidInput, NotFound
from .context import Shop

POOR_SATISFACTION = 2  # 1-5: this or lower opens a follow-up
POOR_RECOMMEND = 4  # 0-10: this or lower opens a follow-up


def record_feedback(
    shop: Shop,
    *,
    transaction_id: str | None = None,
    visit_code: str | None = None,
    satisfaction: int | None = None,
    recommend: int | None = None,
    comment: str | None = None,
    complaint: bool = False,
) -> dict[str, Any]:
    if satisfaction is None and recommend is None and not (comment and comment.strip()):
        raise InvalidInput("give a satisfaction score, a likelihood to recommend, or a comment", field="satisfaction")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise InvalidInput("satisfaction is from 1 to 5", field="satisfaction")
    if recommend is not None and not 0 <= recommend <= 10:
        raise InvalidInput("likelihood to recommend is from 0 to 10", field="recommend")
    with shop.uow() as uow:
        if transaction_id:
            tx = uow.transactions.get(transaction_id)
        elif visit_code:
            tx = uow.transactions.by_visit_code(visit_code.strip().upper())
        else:
            raise InvalidInput("name the visit: a transaction id or the visit code from the receipt", field="transaction_id")
        if tx is None or tx.kind != "sale":
            raise NotFound("there is no such visit", field="transaction_id" if transaction_id else "visit_code")
        if uow.feedback.for_transaction(tx.id) is not None:
            raise Conflict("this visit has already been rated", field="transaction_id")
        row = uow.feedback.add(
            transaction_id=tx.id, customer_id=tx.customer_id, satisfaction=satisfaction, recommend=recommend,
            comment=(comment or "").strip() or None, complaint=complaint, created_at=shop.now(),
        )
        reasons = []
        if complaint:
            reasons.append("complaint")
        if satisfaction is not None and satisfaction <= POOR_SATISFACTION:
            reasons.append(f"satisfaction {satisfaction}/5")
        if recommend is not None and recommend <= POOR_RECOMMEND:
            reasons.append(f"would recommend {recommend}/10")
        follow_up = None
        if reasons:
            text = ", ".join(reasons) + (f": {row.comment}" if row.comment else "")
            follow_up = uow.follow_ups.add(
                customer_id=tx.customer_id, feedback_id=row.id, transaction_id=tx.id, opened_at=shop.now(), reason=text
            )
        uow.commit()
        return {
            "id": row.id,
            "transaction_id": tx.id,
            "satisfaction": satisfaction,
            "recommend": recommend,
            "comment": row.comment,
            "complaint": complaint,
            "follow_up_id": follow_up.id if follow_up else None,
        }


def resolve_follow_up(shop: Shop, follow_up_id: int, *, user: str, resolution: str) -> dict[str, Any]:
    if not user or not user.strip():
        raise InvalidInput("say who resolved it", field="user")
    if not resolution or not resolution.strip():
        raise InvalidInput("say how it was resolved", field="resolution")
    with shop.uow() as uow:
        row = uow.follow_ups.get(follow_up_id)
        if row is None:
            raise NotFound(f"there is no follow-up {follow_up_id}", field="follow_up_id")
        if row.resolved_at is not None:
            raise Conflict("this follow-up is already resolved", field="follow_up_id")
        row.resolved_at, row.resolved_by, row.resolution = shop.now(), user.strip(), resolution.strip()
        uow.audit.record(user.strip(), "follow_up.resolve", "follow_up", str(row.id), None, {"resolution": row.resolution})
        uow.commit()
        return {"id": row.id, "resolved_at": row.resolved_at.isoformat(), "resolved_by": row.resolved_by, "resolution": row.resolution}


def follow_ups_of(shop: Shop, customer_id: int) -> list[dict[str, Any]]:
    """Every follow-up a customer's ratings opened, open ones first, then the newest resolved."""
    with shop.uow(read_only=True) as uow:
        if uow.customers.get(customer_id) is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        rows = [
            {
                "id": f.id,
                "opened_at": f.opened_at,
                "reason": f.reason,
                "transaction_id": f.transaction_id,
                "resolved_at": f.resolved_at,
                "resolved_by": f.resolved_by,
                "resolution": f.resolution,
            }
            for f in uow.privacy.follow_ups(customer_id)
        ]
    open_ones = [f for f in rows if f["resolved_at"] is None]
    resolved = sorted((f for f in rows if f["resolved_at"] is not None), key=lambda f: f["resolved_at"], reverse=True)
    return open_ones + resolved
