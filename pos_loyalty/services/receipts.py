"""Receipts: from a recorded transaction to its laid-out receipt, and the print queue's records.

Printing itself is a driver's job (``pos_loyalty/printing.py`` runs it); these use cases only
read what was committed and keep the queue's rows, so a sale is always stored before anything
reaches the printer and a printer fault leaves the job queued for a reprint.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..domain import earning as E
from ..domain import receipt as R
from ..domain.errors import NotFound
from ..domain.programme import Programme
from .context import Shop
from .programme import programme_version


@dataclass(frozen=True)
class ReceiptOptions:
    columns: int = 42
    feedback_url: str | None = None
    shop_address: tuple[str, ...] = ()


def _statement(view: dict[str, Any], options: ReceiptOptions, promotion_name: str | None = None) -> R.LoyaltyStatement | None:
    customer = view.get("customer")
    if not customer or view["kind"] != "sale":
        return None
    points = view["points"]
    breakdown = points.get("breakdown") or {}
    tier = view.get("tier") or {}
    nxt_tier = tier.get("next")
    nxt_reward = view.get("next_reward")
    expiry = view.get("next_expiry")
    return R.LoyaltyStatement(
        preferred_name=customer.get("preferred_name") or customer.get("name") or "",
        card_number=customer.get("card_number") or "",
        language=customer.get("language") or "en",
        earned=R.EarnedPoints(
            base=breakdown.get("base", points.get("earned", 0)),
            promotion=breakdown.get("promotion", 0),
            promotion_name=promotion_name if breakdown.get("promotion") else None,
            tier=breakdown.get("tier", 0),
            bonuses=tuple((b["reason"], b["points"]) for b in breakdown.get("bonuses", [])),
        ),
        balance_before=points["balance_before"],
        balance_after=points["balance_after"],
        redeemed=tuple(R.AppliedReward(r["name"], r["points"], r["discount"]) for r in view.get("rewards", [])),
        next_reward=R.NextReward(nxt_reward["name"], nxt_reward["points_needed"]) if nxt_reward else None,
        tier=tier.get("name"),
        tier_progress=R.TierProgress(nxt_tier["name"], nxt_tier["spend_needed"]) if nxt_tier else None,
        next_expiry=R.PointsExpiry(expiry["points"], dt.date.fromisoformat(expiry["date"])) if expiry else None,
        birthday_week=bool(view.get("birthday_week")),
        feedback_url=options.feedback_url,
        visit_code=view.get("visit_code"),
    )


def _view(shop: Shop, transaction_id: str) -> tuple[dict[str, Any], str | None]:
    """The answer stored with the transaction, and the name of the promotion it earned under."""
    with shop.uow(read_only=True) as uow:
        tx = uow.transactions.get(transaction_id)
        if tx is None or not tx.response:
            raise NotFound(f"there is no transaction {transaction_id}", field="transaction_id")
        view = tx.response
        promotion = None
        if view["kind"] == "sale" and ((view.get("points") or {}).get("breakdown") or {}).get("promotion"):
            promotion = _promotion_name(view, programme_version(uow, view.get("programme_version")), shop.timezone)
        return view, promotion


def _promotion_name(view: dict[str, Any], programme: Programme, timezone: dt.tzinfo) -> str | None:
    """Which promotion multiplied the sale's points, under the programme version it was priced by
    (a promotion renamed or ended since does not change an old receipt). Each line earns under
    the best promotion running that day that covers it, exactly as ``compute_earning`` chose;
    a basket whose lines earned under different promotions names them all."""
    day = dt.datetime.fromisoformat(view["occurred_at"]).astimezone(timezone).date()
    running = E.multiplying_promotions(programme.promotions, day)
    names: list[str] = []
    for ln in view["lines"]:
        if ln["paid"] <= 0 or not programme.earns(ln.get("category")):
            continue
        applied = next((p for p in running if p.covers(ln["sku"], ln.get("category"))), None)
        if applied is not None and applied.name not in names:
            names.append(applied.name)
    return ", ".join(names) or None


def receipt_for(shop: Shop, transaction_id: str, options: ReceiptOptions, *, copy: bool = False) -> R.Receipt:
    """The whole receipt: shop header, items, totals, the loyalty statement, footer; ``copy``
    for one printed before, which says so at its top."""
    view, promotion = _view(shop, transaction_id)
    data = R.ReceiptData(
        shop_name=shop.shop_name,
        shop_address=options.shop_address,
        transaction_id=view["id"],
        time=dt.datetime.fromisoformat(view["occurred_at"]),
        timezone=shop.timezone.key,
        till=view.get("till") or "",
        cashier=view.get("cashier") or "",
        currency=view["currency"],
        locale=shop.locale,
        items=tuple(
            R.ItemLine(
                description=ln["description"],
                sku=ln["sku"],
                quantity=Decimal(ln["quantity"]),
                unit_price_minor=ln["unit_price"],
                discount_minor=ln["line_discount"] + ln["reward_discount"],
                paid_minor=ln["paid"],
            )
            for ln in view["lines"]
        ),
        subtotal_minor=view["subtotal"],
        total_minor=view["total"],
        rewards=tuple(R.AppliedReward(r["name"], r["points"], r["discount"]) for r in view.get("rewards", [])),
        loyalty=_statement(view, options, promotion),
        copy=copy,
    )
    return R.lay_out_receipt(data, columns=options.columns)


def loyalty_block_for(shop: Shop, transaction_id: str, options: ReceiptOptions) -> R.Receipt | None:
    """Just the customer's statement, for a till that prints its own receipt; None if anonymous."""
    view, promotion = _view(shop, transaction_id)
    statement = _statement(view, options, promotion)
    if statement is None:
        return None
    return R.lay_out_loyalty_block(statement, columns=options.columns, locale=shop.locale, currency=shop.currency)


# -- the print queue's records ---------------------------------------------------------------------
# Every job belongs to a station (the ``station`` setting of the till whose printer prints it), so
# tills sharing a database each print, requeue and list only their own receipts.


def _job_dict(job) -> dict[str, Any]:
    return {
        "id": job.id,
        "transaction_id": job.transaction_id,
        "status": job.status,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "created_at": job.created_at.isoformat(),
        "printed_at": job.printed_at.isoformat() if job.printed_at else None,
        "station": job.station,
    }


def queue_receipt(shop: Shop, transaction_id: str, *, station: str) -> dict[str, Any]:
    """Record that this transaction's receipt is to be printed (again) at ``station``; a receipt
    already waiting keeps its one job rather than printing twice, and moves to ``station``: a
    reprint asked for here is printed here, and the station it was waiting at leaves it be."""
    with shop.uow() as uow:
        if uow.transactions.get(transaction_id) is None:
            raise NotFound(f"there is no transaction {transaction_id}", field="transaction_id")
        job = uow.print_jobs.unfinished_for(transaction_id)
        if job is None:
            job = uow.print_jobs.add(transaction_id, station)
        job.status, job.station = "queued", station
        uow.commit()
        return _job_dict(job)


def print_job(shop: Shop, job_id: int) -> dict[str, Any] | None:
    """The job as stored now, for the print queue to check before each attempt."""
    with shop.uow(read_only=True) as uow:
        job = uow.print_jobs.get(job_id)
        return None if job is None else _job_dict(job)


def printed_before(shop: Shop, job_id: int) -> bool:
    """Whether the job's receipt has come out of a printer already: a reprint asked for after it
    did is printed as a copy."""
    with shop.uow(read_only=True) as uow:
        job = uow.print_jobs.get(job_id)
        return job is not None and uow.print_jobs.printed_before(job)


def is_waiting_at(job: dict[str, Any] | None, station: str) -> bool:
    """Whether ``station`` should still print ``job``: not printed meanwhile (by a reprint), not
    taken over by another station's reprint."""
    return job is not None and job["status"] != "printed" and job["station"] in (station, None)


def record_print_result(shop: Shop, job_id: int, *, error: str | None) -> dict[str, Any]:
    with shop.uow() as uow:
        job = uow.print_jobs.get(job_id)
        if job is None:
            raise NotFound(f"there is no print job {job_id}", field="job_id")
        job.attempts += 1
        if error is None:
            job.status, job.printed_at, job.last_error = "printed", shop.now(), None
        else:
            job.status, job.last_error = "failed", error[:500]
        uow.commit()
        return _job_dict(job)


def claim_unowned_print_jobs(shop: Shop, station: str) -> int:
    """Waiting jobs from before stations were recorded become ``station``'s (migration 0009 says why)."""
    with shop.uow() as uow:
        claimed = uow.print_jobs.claim_unowned(station)
        uow.commit()
        return claimed


def waiting_print_jobs(shop: Shop, *, station: str | None = None) -> list[dict[str, Any]]:
    """Receipts not yet printed: ``station``'s own (and any no station has claimed yet), or with
    no station named, every station's."""
    with shop.uow(read_only=True) as uow:
        return [_job_dict(j) for j in uow.print_jobs.queued(station)]


def printed_print_jobs(shop: Shop, *, station: str, limit: int = 10) -> list[dict[str, Any]]:
    """The receipts ``station`` printed last, the latest first: a customer asking for a copy."""
    with shop.uow(read_only=True) as uow:
        return [_job_dict(j) for j in uow.print_jobs.printed_recently(station, limit)]
