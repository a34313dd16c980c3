"""Programme health over a date range, each report as a chart and a table; and the lists of
customers to act on (lapsing, points expiring, birthdays coming), each downloadable as CSV."""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request

from pos_loyalty.domain.errors import LoyaltyError
from pos_loyalty.domain.ledger import add_months
from pos_loyalty.services import reports as R

from ..auth import current_staff
from ..charts import PALETTE, Series, bar_chart, line_chart
from ..errors import page_for_exception
from . import forms as F

bp = Blueprint("manager_reports", __name__, url_prefix="/panel/reports")
bp.register_error_handler(Exception, page_for_exception)

def _first_of(find):
    """For a short list: all of it is read, the page shows its first rows."""
    def page(shop, limit):
        rows = find(shop)
        return rows[:limit], len(rows)

    return page


# name: (title, about, (first rows, how many) for the page, columns); the CSV is R.export_action_list
ACTION_LISTS = {
    "lapsing": ("Customers lapsing", f"Bought in the last year, but not in the last {R.DEFAULT_LAPSING_DAYS} days",
                lambda shop, limit: R.lapsing_page(shop, limit=limit), R.LAPSING_COLUMNS),
    "expiring": ("Points expiring soon", f"Points that expire in the next {R.DEFAULT_EXPIRY_WINDOW_DAYS} days",
                 _first_of(R.points_expiring), R.EXPIRING_COLUMNS),
    "birthdays": ("Birthdays coming", f"Birthdays in the next {R.DEFAULT_BIRTHDAY_WINDOW_DAYS} days, today included",
                  _first_of(R.birthdays_coming), R.BIRTHDAY_COLUMNS),
}
COLUMN_LABELS = {
    "customer_id": "No.", "name": "Name", "preferred_name": "Likes to be called", "card_number": "Card",
    "last_visit": "Last visit", "days_away": "Days away", "balance": "Points", "marketing_consent": "Offers OK",
    "email": "Email", "phone": "Phone", "points_expiring": "Points expiring", "expires_after": "Last day to spend",
    "birthday_on": "Birthday", "turns": "Turns",
}
ACTION_ROWS_SHOWN = 200  # on the page; the CSV has every row (a chain's lapsing list runs to the hundred thousands)
MEASURE_LABELS = {"active": "Active", "new": "New", "returning": "Returning", "lapsing": "Lapsing"}
EARN_SPEND_LINES = (("earned", "Earned"), ("spent", "Spent"), ("expired", "Expired"))
HALF = {"width": 480, "height": 240}  # a chart in half the page's width: drawn smaller, so its text stays readable


def shop():
    return current_app.extensions["pos_loyalty"].shop


@bp.app_template_filter("iso_day")
def iso_day(text: str | None) -> dt.date | None:
    """A report's ``2026-01-31`` as a date, for the ``day`` filter."""
    return dt.date.fromisoformat(text) if text else None


def default_range(today: dt.date) -> tuple[dt.date, dt.date]:
    """The last twelve months: from the first of the month eleven months back, to today included."""
    return add_months(today.replace(day=1), -11), today + dt.timedelta(days=1)


def month_label(month: str) -> str:
    """``2026-01`` -> ``Jan 26``."""
    year, number = month.split("-")
    return f"{dt.date(int(year), int(number), 1):%b} {year[2:]}"


def tenths(percent_text: str | None) -> int | None:
    """A report's percentage (``"41.8"``, exact text) as whole tenths for a chart: ``418``."""
    if percent_text is None:
        return None
    whole, _, tenth = percent_text.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 10 + int(tenth or 0))


def _charts(reports: dict[str, Any]) -> dict[str, Any]:
    outstanding, earn, redemption = reports["outstanding"], reports["earn"], reports["redemption"]
    activity, ratings, rewards = reports["activity"], reports["ratings"], reports["rewards"]
    months = [month_label(row["month"]) for row in earn["rows"]]
    return {
        "outstanding": bar_chart(
            ["Held by customers", f"Expiring in {outstanding['expiring']['within_days']} days"],
            [Series("Points", [outstanding["points"], outstanding["expiring"]["points"]])],
            title="Points outstanding", **HALF,
        ),
        "earn": line_chart(
            months,
            [Series(name, [row[key] for row in earn["rows"]]) for key, name in EARN_SPEND_LINES],
            title="Points earned and spent by month",
        ),
        "redemption": bar_chart(
            ["Points spent", "Sales", "Card sales"],
            [Series("Redeemed", [tenths(row["percent"]) for row in redemption["rows"]])],
            title="Redemption rate, per cent", decimals=1, suffix=" %", **HALF,
        ),
        "activity": bar_chart(
            [MEASURE_LABELS[row["measure"]] for row in activity["rows"]],
            [Series("Customers", [row["customers"] for row in activity["rows"]])],
            title="Active, new, returning and lapsing customers", **HALF,
        ),
        "ratings": bar_chart(
            [f"{row['satisfaction']} of 5" for row in ratings["rows"]],
            [Series("Ratings", [row["ratings"] for row in ratings["rows"]])],
            title="Visit ratings by satisfaction", **HALF,
        ),
        "retention": _retention_chart(activity["retention"]),
        "rewards": bar_chart(
            [row["name"] if len(row["name"]) <= 12 else row["name"][:11] + "…" for row in rewards["rows"][:5]],
            [Series("Times redeemed", [row["times_redeemed"] for row in rewards["rows"][:5]])],
            title="The rewards redeemed most", **HALF,
        ) if rewards["rows"] else None,
    }


def _retention_chart(retention: dict[str, Any]):
    """A line for each of the latest cohorts: the share of the month's new customers buying in
    each month since. A cohort whose first month is the range's last has only its 100 % to show,
    and is left to the table; so are the older cohorts, beyond the palette's colours."""
    cohorts = [row for row in retention["rows"] if row.get("month_1") is not None][-len(PALETTE):]
    if not cohorts:
        return None
    since = [col for col in retention["columns"][2:] if cohorts[0][col["key"]] is not None]
    return line_chart(
        ["First" if k == 0 else f"+{k}" for k in range(len(since))],
        [Series(month_label(row["cohort"]), [tenths(row["percent"][col["key"]]) for col in since]) for row in cohorts],
        title="Share of each month's new customers buying again, per cent", decimals=1, suffix=" %",
    )


@bp.route("", strict_slashes=False)
def health():
    start, end = default_range(shop().local_date())
    values = {"start": request.args.get("start", start.isoformat()).strip(), "end": request.args.get("end", end.isoformat()).strip()}
    form = F.empty_form(values)
    try:
        reports = {
            "earn": R.earned_versus_spent(shop(), values["start"], values["end"]),
            "redemption": R.redemption_rate(shop(), values["start"], values["end"]),
            "activity": R.customer_activity(shop(), values["start"], values["end"]),
            "ratings": R.visit_ratings(shop(), values["start"], values["end"]),
            "rewards": R.top_rewards(shop(), values["start"], values["end"]),
            "outstanding": R.points_outstanding(shop()),
        }
    except LoyaltyError as refused:
        field, message = F.problem_of(refused, {}, {"start", "end"})
        form["errors"] = {field: message}
        return render_template("manager/reports.html", form=form, reports=None), 422
    last_day = dt.date.fromisoformat(reports["earn"]["end"]) - dt.timedelta(days=1)
    return render_template(
        "manager/reports.html", form=form, reports=reports, charts=_charts(reports), last_day=last_day,
        month_label=month_label, measures=MEASURE_LABELS,
        months={row["month"]: month_label(row["month"]) for row in reports["earn"]["rows"]},
    )


@bp.route("/actions")
def actions():
    lists = {}
    for key, (title, about, page, columns) in ACTION_LISTS.items():
        rows, total = page(shop(), ACTION_ROWS_SHOWN)
        lists[key] = (title, about, rows, total, columns)
    return render_template("manager/actions.html", lists=lists, labels=COLUMN_LABELS, shown=ACTION_ROWS_SHOWN)


@bp.route("/actions/<name>.csv")
def action_csv(name: str):
    """Every row of the list, for a spreadsheet; the audit log notes who downloaded which list."""
    if name not in ACTION_LISTS:
        abort(404)
    filename = f"{name}-{shop().local_date().isoformat()}.csv"
    return Response(
        R.export_action_list(shop(), name, actor=current_staff().username),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
