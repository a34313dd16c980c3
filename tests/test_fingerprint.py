"""A transaction's fingerprint (the hash of what the till sent, stored with it) never changes its
text: a till retrying a sale recorded before an upgrade must still be recognised. The sale's own
fast way to it gives exactly the general way's dict, so exactly the same hash."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from pos_loyalty.services.transactions import LineInput, ReturnRequest, SaleRequest, _plain, _sale_plain, fingerprint

_text = st.text(max_size=12)
_maybe_text = st.none() | _text
_lines = st.lists(
    st.builds(LineInput, sku=_text, description=_text, quantity_milli=st.integers(-10**9, 10**9), unit_price=st.integers(0, 10**9),
              category=_maybe_text, line_discount=st.integers(0, 10**6)),
    max_size=6,
)
_moments = st.datetimes(timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=2))]))


@settings(max_examples=300)
@given(_text, _moments, _text, _lines, _maybe_text, _maybe_text, st.lists(st.integers(1, 10**6), max_size=3),
       st.sampled_from([list, tuple]))
def test_a_sale_s_fingerprint_is_the_general_one(id, at, currency, lines, card, cashier, rewards, container):
    request = SaleRequest(id=id, occurred_at=at, currency=currency, lines=container(lines), card_number=card, cashier=cashier,
                          rewards=container(rewards))
    assert _sale_plain(request) == _plain(request)
    assert type(_sale_plain(request)["lines"]) is list and type(_sale_plain(request)["rewards"]) is list


def test_the_fingerprint_of_a_known_sale_and_return_has_not_changed():
    # computed before the sale's fast way existed; a changed text would break every stored retry
    sale = SaleRequest(
        id="S-1", occurred_at=dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc), currency="EUR",
        lines=(LineInput("COF", "Café crème", 1000, 250, "drinks", 0), LineInput("BAN", "Bananen", 755, 199, None, 10)),
        card_number="2712345678905", cashier="anna", rewards=(3,),
    )
    assert fingerprint(sale) == SALE_FINGERPRINT
    back = ReturnRequest(id="R-1", occurred_at=dt.datetime(2026, 6, 16, 9, 0, tzinfo=dt.timezone.utc), lines=(("COF", 1000),))
    assert fingerprint(back) == RETURN_FINGERPRINT


SALE_FINGERPRINT = "9b983ce66cfa1521adda4c213eb19ba6a3c4639b504fe9853cf9f488d3dbd119"
RETURN_FINGERPRINT = "41061339317c69f9f15ed4bb9e259d927bed222f872999894dfb3ae2a601b579"
