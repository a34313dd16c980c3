"""The counter's statements run on the driver's own cursor (``persistence/prepared.py``): what they
write and read must be exactly what SQLAlchemy's own execution writes and reads, on both
databases, or a receipt would show a wrong time, a lost answer or a 500 instead of a 409."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, literal_column, or_, select
from sqlalchemy.exc import IntegrityError

from pos_loyalty.persistence import models as m
from pos_loyalty.persistence import repositories as repos
from pos_loyalty.persistence.prepared import Prepared, run
from tests.support.factories import adjust, enrol, line, reward, sale


def _session(app):
    db = app.extensions["pos_loyalty"].db
    from sqlalchemy.orm import Session

    return Session(db.writer)


def test_a_sale_written_on_the_fast_path_reads_back_through_the_models_as_written(api, app, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=50)
    anna = enrol(api)
    adjust(api, anna["id"], 80)
    occurred = clock.now - dt.timedelta(minutes=3)
    answer = api.post(
        "/transactions",
        json=sale(line("COF", 250, 2), line("BAN", 199, "0.755", category="fruit"), card=anna["card"], rewards=[coffee["id"]], at=occurred),
    ).get_json()
    with _session(app) as s:
        tx = s.get(m.Transaction, answer["id"])
        assert tx.occurred_at == occurred and tx.occurred_at.tzinfo is not None  # aware, UTC, to the microsecond
        assert tx.recorded_at == clock.now
        assert tx.response == answer  # the stored answer is the JSON the till got
        assert (tx.subtotal, tx.discount, tx.points_earned, tx.points_redeemed) == (
            answer["subtotal"], answer["discount"], answer["points"]["earned"], 50)
        lines = s.scalars(select(m.TransactionLine).where(m.TransactionLine.transaction_id == tx.id).order_by(m.TransactionLine.line_no)).all()
        assert [(ln.sku, ln.quantity_milli, ln.paid, ln.points) for ln in lines] == [
            (x["sku"], q, x["paid"], x["points"]) for x, q in zip(answer["lines"], (2000, 755))]
        entries = s.scalars(select(m.LedgerEntry).where(m.LedgerEntry.transaction_id == tx.id).order_by(m.LedgerEntry.id)).all()
        assert [(e.kind, e.points) for e in entries] == [("redeem", -50), ("earn", answer["points"]["earned"])]
        assert entries[1].expires_at is not None and entries[1].expires_at.tzinfo is not None
        assert all(e.created_at == clock.now for e in entries)
        products = {p.sku: p for p in s.scalars(select(m.CustomerProduct).where(m.CustomerProduct.customer_id == anna["id"]))}
        assert products["BAN"].last_bought_at == occurred and products["BAN"].quantity_milli == 755
        assert s.get(m.Customer, anna["id"]).balance == 80 - 50 + answer["points"]["earned"]


def test_reads_on_the_fast_path_give_what_sqlalchemy_gives(api, app, shop, clock):
    anna = enrol(api, birthday="1990-06-20", preferred_name="Annie")
    api.post("/transactions", json=sale(line("COF", 1250), card=anna["card"]))
    with _session(app) as s:
        params = {"number": anna["card"], "since": clock.now - dt.timedelta(days=365)}
        theirs = s.execute(repos._CARD_HOLDER_WITH_VISITS.statement, params).one()
        ours = run(s, repos._CARD_HOLDER_WITH_VISITS, params).first()
        assert tuple(ours) == tuple(theirs)
        assert ours._fields == tuple(theirs._fields)
        assert isinstance(ours.birthday, dt.date) and ours.preferences == theirs.preferences
        assert ours.last_sale_at.tzinfo is not None and ours.rolling_spend == 1250
        assert run(s, repos._CARD_HOLDER, {"number": "2700000000000"}).first() is None


def test_a_duplicate_on_the_fast_path_is_sqlalchemys_integrity_error(api, app):
    r = api.post("/transactions", json=sale(line("COF", 900)))
    with _session(app) as s:
        row = s.get(m.Transaction, r.get_json()["id"])
        copy = {c.key: getattr(row, c.key) for c in m.Transaction.__table__.columns}
        with pytest.raises(IntegrityError):
            run(s, repos._INSERT_TRANSACTION, [copy])


def test_a_statement_whose_parameters_expand_is_refused_not_run_wrong(app):
    statement = Prepared(select(m.Reward.id).where(m.Reward.id.in_(bindparam("ids", expanding=True))))
    with _session(app) as s, pytest.raises(ValueError, match="expand"):
        run(s, statement, {"ids": [1, 2]})


def test_a_sale_of_many_lines_writes_every_line_and_favourite_in_order(api, app):
    """A 201-line sale (one product on two lines) writes every line in order with its points, and
    one favourite per product with both lines' quantity, through the prepared executemany."""
    anna = enrol(api)
    lines = [line(f"SKU{i:03d}", 100 + i, 1 + i % 3) for i in range(200)] + [line("SKU000", 100, 2)]  # one product twice
    answer = api.post("/transactions", json=sale(*lines, card=anna["card"]))
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    with _session(app) as s:
        stored = s.scalars(select(m.TransactionLine).where(m.TransactionLine.transaction_id == body["id"]).order_by(m.TransactionLine.id)).all()
        assert [(ln.line_no, ln.sku, ln.points) for ln in stored] == [(ln["line_no"], ln["sku"], ln["points"]) for ln in body["lines"]]
        assert [ln.line_no for ln in stored] == list(range(1, 202))
        favourites = {p.sku: p for p in s.scalars(select(m.CustomerProduct).where(m.CustomerProduct.customer_id == anna["id"]))}
        assert len(favourites) == 200
        assert favourites["SKU000"].visits == 1 and favourites["SKU000"].quantity_milli == 3_000  # one visit, both lines' quantity
        assert favourites["SKU199"].quantity_milli == 2_000


def test_timestamps_read_on_the_fast_path_are_sqlalchemy_s_to_the_microsecond(api, app, shop, clock):
    anna = enrol(api)
    clock.advance(microseconds=123457)
    adjust(api, anna["id"], 40)
    api.post("/transactions", json=sale(line("COF", 1250), card=anna["card"], at=clock.now - dt.timedelta(microseconds=1)))
    with _session(app) as s:
        params = {"customer_id": anna["id"]}
        theirs = [tuple(r) for r in s.execute(repos._ENTRIES_OF.statement, params)]
        ours = [tuple(r) for r in run(s, repos._ENTRIES_OF, params)]
        assert ours == theirs and len(ours) >= 2
        assert all(r[3].tzinfo == dt.timezone.utc and r[3].microsecond == 123457 for r in ours)
        assert all(r[4] is None or r[4].tzinfo == dt.timezone.utc for r in ours)


@settings(max_examples=400)
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                               dt.timezone(dt.timedelta(hours=-8))])))
def test_timestamps_in_and_out_of_sqlite_on_the_fast_path_are_sqlalchemy_s(moment):
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    utc_type = m.UTCDateTime()
    theirs_in = utc_type.dialect_impl(dialect).bind_processor(dialect)
    theirs_out = utc_type.dialect_impl(dialect).result_processor(dialect, None)
    ours_in = utc_type.fused_bind_processor(dialect)
    ours_out = utc_type.fused_result_processor(dialect)
    stored = theirs_in(moment)
    assert ours_in(moment) == stored
    assert ours_out(stored) == theirs_out(stored) == moment
    with pytest.raises(ValueError):
        ours_in(moment.replace(tzinfo=None))  # a naive time is refused either way
    with pytest.raises(ValueError):
        theirs_in(moment.replace(tzinfo=None))


def test_a_sales_lines_and_favourites_go_to_postgresql_as_one_statement_each(api, app):
    """On PostgreSQL a sale's lines and its favourites are each one INSERT with a row of values per
    line or product (the driver's executemany had the server run one statement a row); what is
    stored is the same on both databases: every line in order, and a product bought again adds a
    visit and its quantity."""
    anna = enrol(api)
    basket = [line(f"P{i:02d}", 100 + i, 1 + i % 2) for i in range(9)] + [line("P00", 100, 3)]  # P00 on two lines
    for n in (1, 2):
        r = api.post("/transactions", json=sale(*basket, card=anna["card"], id=f"TEN-{n}"))
        assert r.status_code == 201, r.get_json()
    with _session(app) as s:
        stored = s.scalars(select(m.TransactionLine).where(m.TransactionLine.transaction_id == "TEN-2").order_by(m.TransactionLine.id)).all()
        assert [(ln.line_no, ln.sku, ln.quantity_milli) for ln in stored] == [
            (i + 1, x["sku"], int(x["quantity"]) * 1000) for i, x in enumerate(basket)]
        favourites = {p.sku: p for p in s.scalars(select(m.CustomerProduct).where(m.CustomerProduct.customer_id == anna["id"]))}
        assert len(favourites) == 9 and favourites["P00"].visits == 2 and favourites["P00"].quantity_milli == 2 * 4000
        assert favourites["P08"].visits == 2 and favourites["P08"].quantity_milli == 2 * 1000
    if not app.extensions["pos_loyalty"].db.is_sqlite:
        rows_in_one = {key[2] for key in repos._INSERT_LINES._plans if key[0] == "postgresql" and len(key) == 3}
        assert 10 in rows_in_one and 9 in {key[2] for key in repos._record_bought("postgresql")._plans if len(key) == 3}


def test_psycopg_gets_the_statement_numbered_as_postgresql_writes_it():
    """On PostgreSQL the statements go to psycopg's raw cursor already in ``$1`` form: psycopg
    would otherwise parse each one on every run, and one of over 50 parameters (a sale's lines in
    one INSERT) without its cache. A name used twice is one number; ``%%`` is a ``%``."""
    from pos_loyalty.persistence.prepared import _numbered

    assert _numbered("SELECT %(a)s, %(b)s::INTEGER, %(a)s, 7 %% 2, '%%(c)s'") == (
        "SELECT $1, $2::INTEGER, $1, 7 % 2, '%(c)s'", ("a", "b"))


def test_a_parameter_used_twice_and_a_literal_percent_run_on_either_database(app, api):
    anna = enrol(api)
    statement = Prepared(select(m.Customer.id, (m.Customer.id % 2).label("odd"), literal_column("'100%'").label("all"))
                         .where(or_(m.Customer.id == bindparam("x"), m.Customer.balance == bindparam("x"))))
    with _session(app) as s:
        row = run(s, statement, {"x": anna["id"]}).first()
    assert (row.id, row.odd, row.all) == (anna["id"], anna["id"] % 2, "100%")
