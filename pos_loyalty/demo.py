"""A believable demo shop: a small delicatessen-grocer with a year of loyalty history.

Everything goes through the same use cases the tills and the panel use (enrol, record a sale or
a return, rate a visit, resolve a follow-up, adjust points), so the ledger, the balances, the
tiers and the favourites are exactly what real trading would have left. The shop's clock is
moved along the timeline, so every timestamp, expiry date and tier is what it would have been.

Reproducible: the same seed gives the same customers, baskets and events (card numbers, visit
codes, passwords and the till token are random, as in real use).
"""
from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
import secrets
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from babel.numbers import format_currency

from .domain.errors import Conflict, InvalidInput
from .services.access import add_till, add_user
from .services.context import Shop
from .services.customers import enrol_customer
from .services.feedback import record_feedback, resolve_follow_up
from .services.points import adjust_points, expire_points
from .services.programme import add_reward, only_first_programme_stored, save_programme
from .services.transactions import LineInput, ReturnRequest, SaleRequest, record_return, record_sale

MANAGER = "manager"
CASHIER = "cashier"
TILL = "till-1"
ACTOR = "demo"
CASHIERS = ("mia", "jonas", "leonie")
OPENING_HOURS = (8, 19)  # local time; closed on Sundays


# -- the catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    sku: str
    description: str
    category: str
    unit_price: int  # minor units; per kg for weighed goods
    weighed: tuple[int, int] | None = None  # (min, max) quantity in grams


CATALOGUE = (
    Product("BAK-SOUR", "Sourdough loaf", "bakery", 420),
    Product("BAK-ROLL", "Bread roll", "bakery", 45),
    Product("BAK-CROI", "Butter croissant", "bakery", 120),
    Product("BAK-PRET", "Pretzel", "bakery", 95),
    Product("BAK-CAKE", "Apple cake, slice", "bakery", 290),
    Product("DAI-MILK", "Fresh milk 1 l", "dairy", 129),
    Product("DAI-YOGH", "Natural yoghurt 500 g", "dairy", 189),
    Product("DAI-BUTR", "Butter 250 g", "dairy", 249),
    Product("ORG-EGGS", "Organic eggs, 6", "organic", 349),
    Product("ORG-OATS", "Organic oat drink 1 l", "organic", 229),
    Product("ORG-HONY", "Organic forest honey 500 g", "organic", 799),
    Product("PRO-APPL", "Apples, Elstar", "produce", 299, (400, 2200)),
    Product("PRO-BANA", "Bananas", "produce", 199, (450, 1600)),
    Product("PRO-TOMA", "Vine tomatoes", "produce", 449, (250, 1100)),
    Product("PRO-POTA", "Potatoes, waxy", "produce", 179, (1000, 2500)),
    Product("PRO-CARR", "Carrots", "produce", 159, (300, 1200)),
    Product("DEL-GOUD", "Aged Gouda", "deli", 2290, (120, 450)),
    Product("DEL-BRIE", "Brie de Meaux", "deli", 2890, (100, 350)),
    Product("DEL-HAM", "Black Forest ham", "deli", 3190, (80, 250)),
    Product("DEL-OLIV", "Green olives", "deli", 1590, (100, 300)),
    Product("COF-BEAN", "Espresso beans 500 g", "coffee", 1190),
    Product("COF-CUP", "Coffee to go", "coffee", 290),
    Product("DRK-WATR", "Sparkling water 0.75 l", "drinks", 89),
    Product("DRK-JUIC", "Apple juice 1 l", "drinks", 219),
    Product("DRK-WINE", "House red wine 0.75 l", "drinks", 899),
    Product("DRK-BEER", "Pilsner 0.5 l", "drinks", 119),
    Product("HOU-SOAP", "Washing-up liquid", "household", 199),
    Product("HOU-PAPR", "Kitchen roll, 4 rolls", "household", 349),
    Product("TOB-CIGS", "Cigarettes, 20", "tobacco", 850),
)
DEPOSIT = Product("DEP-BOTL", "Bottle deposit", "deposits", 25)
BOTTLED = {"DRK-WATR", "DRK-JUIC", "DRK-BEER"}
BY_SKU = {p.sku: p for p in CATALOGUE}
EVERYDAY = [p for p in CATALOGUE if p.category != "tobacco"]


def programme_settings(today: dt.date, *, with_promotions: bool) -> dict[str, Any]:
    """The earn rules the manager set up; the promotions came with a later version."""
    promotions = []
    if with_promotions:
        fruit_start = today - dt.timedelta(days=130)
        promotions = [
            {"name": "Coffee Saturdays", "starts_on": (today - dt.timedelta(days=180)).isoformat(),
             "ends_on": (today + dt.timedelta(days=180)).isoformat(), "weekdays": [5], "multiplier": "2",
             "categories": ["coffee"]},
            {"name": "Fruit & veg fortnight", "starts_on": fruit_start.isoformat(),
             "ends_on": (fruit_start + dt.timedelta(days=13)).isoformat(), "multiplier": "3",
             "categories": ["produce"]},
            {"name": "Cheese counter week", "starts_on": (today - dt.timedelta(days=3)).isoformat(),
             "ends_on": (today + dt.timedelta(days=4)).isoformat(), "bonus_points": 50, "min_spend": 1500,
             "categories": ["deli"]},
        ]
    return {
        "points_per_unit": 1,
        "unit_minor": 100,
        "excluded_categories": ["deposits", "gift-cards", "lottery", "tobacco"],
        "category_multipliers": {"organic": "2", "household": "0.5"},
        "sku_multipliers": {"BAK-SOUR": "3"},
        "promotions": promotions,
        "tiers": [
            {"code": "bronze", "name": "Bronze", "min_spend": 0, "multiplier": "1"},
            {"code": "silver", "name": "Silver", "min_spend": 7_500, "multiplier": "1.25"},
            {"code": "gold", "name": "Gold", "min_spend": 20_000, "multiplier": "1.5"},
        ],
        "welcome_bonus": 50,
        "birthday_bonus": 100,
        "birthday_window_days": 3,
        "expiry_months": 12,
        "claim_window_days": 14,
        "cashier_goodwill_limit": 100,
        "manager_goodwill_limit": 5_000,
        "point_value_minor": "1",
    }


def reward_catalogue(shop: Shop, today: dt.date) -> list[dict[str, Any]]:
    def money(minor: int) -> str:
        return format_currency(Decimal(minor) / 100, shop.currency, locale=shop.locale)

    winter = dt.date(today.year if today.month >= 10 else today.year - 1, 11, 1)
    return [
        {"name": "Free butter croissant", "kind": "free_item", "sku": "BAK-CROI", "points_cost": 80},
        {"name": "Free coffee to go", "kind": "free_item", "sku": "COF-CUP", "points_cost": 150},
        {"name": f"{money(500)} off your shopping", "kind": "amount_off", "amount": 500, "points_cost": 500},
        {"name": f"10% off your basket (up to {money(1000)})", "kind": "percent_off", "percent": 10, "cap": 1000,
         "points_cost": 700},
        {"name": "A bottle of our house red", "kind": "free_item", "sku": "DRK-WINE", "points_cost": 900,
         "tiers": ["gold"]},
        {"name": "Winter warmer: free apple cake", "kind": "free_item", "sku": "BAK-CAKE", "points_cost": 200,
         "valid_from": winter, "valid_to": winter.replace(year=winter.year + 1, month=2, day=28)},
    ]


# -- the people ----------------------------------------------------------------------------------

GERMAN_FIRST = (
    "Jürgen", "Jörg", "Sören", "Björn", "Käthe", "Günther", "Anna-Lena", "Lukas", "Maximilian", "Elisabeth",
    "Johannes", "Marie", "Sophie", "Felix", "Jonas", "Lea", "Hannah", "Mia", "Paul", "Leon", "Emma", "Lina",
    "Niklas", "Franziska", "Ute", "Dörte", "Matthias", "Katharina", "Ömer", "Ayşe", "Zoë", "René",
)
GERMAN_LAST = (
    "Müller", "Schäfer", "Schröder", "Krüger", "Böhm", "Weiß", "Groß", "Hoffmann", "Schmidt", "Fischer",
    "Wagner", "Becker", "Schulz", "Köhler", "Jäger", "Brückner", "Lößner", "Yılmaz", "Öztürk", "Wójcik",
    "Nowak", "Dvořák", "Lefèvre",
)
ENGLISH_FIRST = (
    "Oliver", "Amelia", "Chloé", "Zoë", "Renée", "José", "Noémie", "Siobhán", "Seán", "Niamh", "Isla",
    "Harry", "Grace", "Thomas", "Eleanor", "Aoife", "Émile", "Inès", "Ana", "William",
)
ENGLISH_LAST = (
    "O'Brien", "Smith", "Taylor", "Lefèvre", "Núñez", "Åkesson", "García", "Brontë", "Doyle", "Walsh",
    "Hughes", "Bennett", "Ó Súilleabháin", "Martín", "Kowalczyk",
)
PREFERRED = {
    "Maximilian": "Max", "Elisabeth": "Lisi", "Johannes": "Hannes", "Katharina": "Kathi", "Franziska": "Franzi",
    "Anna-Lena": "Lena", "Thomas": "Tom", "Eleanor": "Nell", "William": "Bill", "Matthias": "Matze",
    "Siobhán": "Shiv", "Günther": "Günni",
}
ALLERGIES = (["peanuts"], ["gluten"], ["lactose"], ["tree nuts", "sesame"], ["celery"])
DIETARY = (["vegetarian"], ["vegan"], ["halal"], ["kosher"], ["low sodium"])
PACKAGING = ("no plastic bag", "brings own containers for the deli counter", "paper bag, please", "no receipt in the bag")
SERVICE_NOTES = (
    "hard of hearing, face them when speaking",
    "partially sighted: read the total out loud",
    "uses a wheelchair: offer to pass the card reader over the counter",
    "likes to chat about the cheese of the week",
    "in a hurry in the mornings, keep it short",
)
STAFF_NOTES = (
    "Regular since the shop opened.",
    "Orders a whole Gouda for Christmas; remind them in November.",
    "Prefers to be called by their first name.",
)
GOOD_COMMENTS = (
    "Lovely bread as always.", "Friendly staff, quick checkout.", "Great cheese advice at the deli counter.",
    "Sehr freundlich, danke!", None, None,
)
POOR_COMMENTS = (
    "Waited ages at the till, only one checkout open.",
    "The croissants were stale.",
    "The ham was sliced far too thick.",
    "Nobody at the deli counter for ten minutes.",
    "Charged twice for the olives.",
)


def ascii_fold(text: str) -> str:
    text = text.replace("ß", "ss").replace("ı", "i").replace("ø", "o").replace("Ø", "O").replace("ł", "l")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in text.lower() if c.isalnum() or c in ".-")


@dataclass
class Shopper:
    """One demo customer as the simulation sees them (what the shop stores comes from enrolment)."""

    index: int
    profile: dict[str, Any]
    enrols_at: dt.datetime
    mean_days_between_visits: float
    stops_at: dt.datetime  # lapsing customers stop coming before the end
    staples: list[Product]
    basket_size: tuple[int, int]
    smoker: bool
    card: str | None = None
    balance: int = 0
    tier: str = "bronze"


@dataclass
class DemoShop:
    """What was made, and how to log in (the passwords and the token are shown only now)."""

    customers: int = 0
    sales: int = 0
    anonymous_sales: int = 0
    returns: int = 0
    redemptions: int = 0
    ratings: int = 0
    open_follow_ups: int = 0
    expired_points: int = 0
    logins: dict[str, str] = field(default_factory=dict)  # username -> password
    till_name: str = TILL
    till_token: str = ""


class DemoClock:
    """The shop's clock while the demo is made: moved along the timeline event by event."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def what_the_shop_holds(shop: Shop) -> list[str]:
    """Shop data already in the database (empty list: a fresh database the demo may fill)."""
    with shop.uow(read_only=True) as uow:
        held = []
        count = uow.customers.count()
        if count:
            held.append(f"{count} customers")
        if uow.users.all():
            held.append("staff logins")
        if uow.tills.all():
            held.append("tills")
        if uow.rewards.all():
            held.append("rewards")
        if uow.programmes.latest() is not None and not only_first_programme_stored(uow):  # (init's defaults are no shop data)
            held.append("a saved programme")
        return held


def build_demo_shop(
    shop: Shop,
    *,
    customers: int = 250,
    days: int = 396,
    seed: int = 42,
    today: dt.datetime | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoShop:
    """Fill an empty database with ``customers`` customers and ``days`` of trading up to ``today``.

    The default is a little over a year, so the first points have already expired and the
    earliest still open are about to. Refuses (Conflict) when the database holds shop data.
    """
    held = what_the_shop_holds(shop)
    if held:
        raise Conflict(
            f"the database already holds shop data ({', '.join(held)}); the demo only fills an empty database"
        )
    end = (today or shop.now()).astimezone(dt.timezone.utc).replace(second=0, microsecond=0)
    maker = _DemoMaker(shop, random.Random(seed), end - dt.timedelta(days=days), end, on_step or (lambda _: None))
    original_clock = shop.clock
    shop.clock = maker.clock
    try:
        return maker.run(customers)
    finally:
        shop.clock = original_clock


class _DemoMaker:
    def __init__(self, shop: Shop, rng: random.Random, start: dt.datetime, end: dt.datetime, on_step) -> None:
        self.shop, self.rng, self.start, self.end, self.on_step = shop, rng, start, end, on_step
        self.clock = DemoClock(start)
        self.result = DemoShop()
        self.events: list[tuple[dt.datetime, int, str, Any]] = []
        self._order = itertools.count()
        self._sale_ids = itertools.count(1)
        self._return_ids = itertools.count(1)
        self.till_id: int | None = None
        self.rewards: list[dict[str, Any]] = []
        self.card_sales: list[str] = []
        self.rated: set[str] = set()

    # -- the timeline ---------------------------------------------------------------------------
    def at(self, when: dt.datetime, kind: str, payload: Any = None) -> None:
        if when <= self.end:
            heapq.heappush(self.events, (when, next(self._order), kind, payload))

    def opening_time(self, day: dt.date) -> dt.datetime | None:
        """A moment during opening hours on ``day`` (local), or None on a Sunday."""
        if day.weekday() == 6:
            return None
        minutes = self.rng.randrange((OPENING_HOURS[1] - OPENING_HOURS[0]) * 60)
        local = dt.datetime.combine(day, dt.time(OPENING_HOURS[0]), tzinfo=self.shop.timezone)
        return (local + dt.timedelta(minutes=minutes, seconds=self.rng.randrange(60))).astimezone(dt.timezone.utc)

    def run(self, count: int) -> DemoShop:
        self.set_up_programme()
        shoppers = [self.make_shopper(i) for i in range(count)]
        for shopper in shoppers:
            self.at(shopper.enrols_at, "enrol", shopper)
        self.plan_anonymous_sales()
        week = self.start + dt.timedelta(days=7)
        while week <= self.end:
            self.at(week, "expiry run")
            week += dt.timedelta(days=7)
        self.at(max(self.start, self.end - dt.timedelta(days=182)), "new programme version")  # promotions added
        self.on_step(f"{count} customers, {(self.end - self.start).days} days of trading")
        while self.events:
            when, _, kind, payload = heapq.heappop(self.events)
            self.clock.now = when
            getattr(self, "on_" + kind.replace(" ", "_"))(payload)
        self.clock.now = self.end
        self.rate_recent_visits_poorly(3)
        self.result.expired_points += expire_points(self.shop)["points"]
        with self.shop.uow(read_only=True) as uow:
            self.result.open_follow_ups = len(uow.follow_ups.all_open())
        return self.result

    # -- set-up ---------------------------------------------------------------------------------
    def set_up_programme(self) -> None:
        today = self.shop.local_date(self.end)
        save_programme(self.shop, programme_settings(today, with_promotions=False), actor=MANAGER)
        for reward in reward_catalogue(self.shop, today):
            self.rewards.append(add_reward(self.shop, reward, actor=MANAGER))
        identity, self.result.till_token = add_till(self.shop, TILL)
        self.till_id = identity.id
        for username, role in ((MANAGER, "manager"), (CASHIER, "cashier")):
            password = secrets.token_urlsafe(9)
            add_user(self.shop, username, password, role, actor=ACTOR)
            self.result.logins[username] = password

    def on_new_programme_version(self, _payload) -> None:
        today = self.shop.local_date(self.end)
        save_programme(self.shop, programme_settings(today, with_promotions=True), actor=MANAGER)

    def make_shopper(self, i: int) -> Shopper:
        rng = self.rng
        german = rng.random() < 0.7
        first = rng.choice(GERMAN_FIRST if german else ENGLISH_FIRST)
        last = rng.choice(GERMAN_LAST if german else ENGLISH_LAST)
        today = self.shop.local_date(self.end)
        if i % 40 == 0:  # a few birthdays this week, so the birthday list and bonus show
            birthday = today + dt.timedelta(days=rng.randint(-3, 3))
        else:
            birthday = today - dt.timedelta(days=rng.randint(0, 365))
        age = rng.randint(19, 84)
        birthday = _in_year(birthday, birthday.year - age)
        profile: dict[str, Any] = {
            "name": f"{first} {last}",
            "language": "de" if (german and rng.random() < 0.9) or (not german and rng.random() < 0.1) else "en",
            "marketing_consent": rng.random() < 0.6,
            "birthday": birthday if rng.random() < 0.8 or i % 40 == 0 else None,
        }
        if first in PREFERRED and rng.random() < 0.7:
            profile["preferred_name"] = PREFERRED[first]
        if rng.random() < 0.75:
            profile["email"] = f"{ascii_fold(first)}.{ascii_fold(last)}.{i + 1}@example.org"
        if rng.random() < 0.5:
            profile["phone"] = f"+49 151 {20_000_000 + i * 7919:08d}"
        preferences: dict[str, Any] = {}
        if rng.random() < 0.12:
            preferences["allergies"] = rng.choice(ALLERGIES)
        if rng.random() < 0.15:
            preferences["dietary"] = rng.choice(DIETARY)
        if rng.random() < 0.2:
            preferences["packaging"] = rng.choice(PACKAGING)
        if rng.random() < 0.06:
            preferences["service_notes"] = rng.choice(SERVICE_NOTES)
        if rng.random() < 0.3:
            preferences["contact_channel"] = rng.choice(["email", "sms", "post", "none"])
        profile["preferences"] = preferences
        if rng.random() < 0.03:
            profile["staff_notes"] = rng.choice(STAFF_NOTES)

        span = (self.end - self.start).total_seconds()
        # a quarter joined when the programme was launched; since then sign-ups have been growing
        share = rng.random() * 0.08 if rng.random() < 0.25 else rng.random() ** 0.5
        enrols_day = (self.start + dt.timedelta(seconds=span * share * 0.97)).astimezone(self.shop.timezone).date()
        enrols_at = None
        while enrols_at is None:
            enrols_at = self.opening_time(enrols_day)
            enrols_day += dt.timedelta(days=1)
        habit = rng.random()  # a few regulars, more monthly shoppers, many who come now and then
        mean_gap = 18.0 if habit < 0.04 else 40.0 if habit < 0.12 else 100.0 if habit < 0.35 else 365.0
        stops_at = self.end
        if rng.random() < 0.12:  # lapsing: have not been back for a while
            stops_at = self.end - dt.timedelta(days=rng.randint(60, 160))
        staples = rng.sample(EVERYDAY, rng.randint(3, 7))
        return Shopper(
            index=i,
            profile=profile,
            enrols_at=enrols_at,
            mean_days_between_visits=mean_gap,
            stops_at=stops_at,
            staples=staples,
            basket_size=(3, rng.randint(5, 9)) if mean_gap < 20 else (1, rng.randint(3, 5)),
            smoker=rng.random() < 0.1,
        )

    def plan_anonymous_sales(self) -> None:
        """Sales without a card in the last fortnight: a customer may still claim their points."""
        day = self.shop.local_date(self.end) - dt.timedelta(days=14)
        last = self.shop.local_date(self.end)
        while day <= last:
            for _ in range(self.rng.choice((1, 2, 3))):
                when = self.opening_time(day)
                if when is not None and self.start <= when:
                    self.at(when, "anonymous sale")
            day += dt.timedelta(days=1)

    # -- events ---------------------------------------------------------------------------------
    def on_enrol(self, shopper: Shopper) -> None:
        customer = enrol_customer(self.shop, shopper.profile, actor=ACTOR)
        shopper.card = customer["cards"][0]["number"]
        self.result.customers += 1
        self.at(self.clock.now + dt.timedelta(minutes=2), "visit", shopper)  # they joined at the till

    def next_visit(self, shopper: Shopper) -> None:
        gap = self.rng.expovariate(1 / shopper.mean_days_between_visits)
        day = self.shop.local_date(self.clock.now) + dt.timedelta(days=max(1, round(gap)))
        when = self.opening_time(day) or self.opening_time(day + dt.timedelta(days=1))
        if when is not None and when < shopper.stops_at:
            self.at(when, "visit", shopper)

    def basket(self, shopper: Shopper | None) -> list[Product]:
        rng = self.rng
        size = rng.randint(*(shopper.basket_size if shopper else (1, 4)))
        chosen: list[Product] = []
        if shopper is not None:
            chosen = [p for p in shopper.staples if rng.random() < 0.5][:size]
            if shopper.smoker and rng.random() < 0.7:
                chosen.append(BY_SKU["TOB-CIGS"])
        while len(chosen) < size:
            chosen.append(rng.choice(EVERYDAY))
        return list({p.sku: p for p in chosen}.values())

    def lines(self, products: list[Product]) -> list[LineInput]:
        rng = self.rng
        lines, bottles = [], 0
        for p in products:
            if p.weighed:
                qty = rng.randint(*p.weighed)  # grams = thousandths of a kilogram
            elif p.sku == "BAK-ROLL":
                qty = rng.randint(2, 6) * 1000
            else:
                qty = rng.choice((1, 1, 1, 2, 3)) * 1000
            if p.sku in BOTTLED:
                bottles += qty // 1000
            discount = 0
            if p.category == "bakery" and rng.random() < 0.05:  # reduced to clear before closing
                discount = (p.unit_price * qty // 1000) * 30 // 100
            lines.append(LineInput(p.sku, p.description, qty, p.unit_price, p.category, discount))
        if bottles:
            lines.append(LineInput(DEPOSIT.sku, DEPOSIT.description, bottles * 1000, DEPOSIT.unit_price, DEPOSIT.category))
        return lines

    def on_anonymous_sale(self, _payload) -> None:
        self.sell(None, self.lines(self.basket(None)), ())
        self.result.anonymous_sales += 1

    def on_visit(self, shopper: Shopper) -> None:
        products = self.basket(shopper)
        reward = self.pick_reward(shopper)
        if reward and reward["kind"] == "free_item" and reward["sku"] not in {p.sku for p in products}:
            products.append(BY_SKU[reward["sku"]])
        lines = self.lines(products)
        rewards = (reward["id"],) if reward else ()
        try:
            response = self.sell(shopper, lines, rewards)
        except (InvalidInput, Conflict):  # points expired meanwhile, or the tier changed: pay in full
            response = self.sell(shopper, lines, ())
            rewards = ()
        self.result.redemptions += len(rewards)
        shopper.balance = response["points"]["balance_after"]
        shopper.tier = response["tier"]["code"]
        self.after_sale(response["id"])
        self.next_visit(shopper)

    def pick_reward(self, shopper: Shopper) -> dict[str, Any] | None:
        if self.rng.random() > 0.35:
            return None
        today = self.shop.local_date(self.clock.now)
        affordable = [
            r for r in self.rewards
            if r["points_cost"] <= shopper.balance
            and (not r["tiers"] or shopper.tier in r["tiers"])
            and (r["valid_from"] is None or r["valid_from"] <= today)
            and (r["valid_to"] is None or today <= r["valid_to"])
        ]
        return max(affordable, key=lambda r: r["points_cost"]) if affordable else None

    def sell(self, shopper: Shopper | None, lines: list[LineInput], rewards) -> dict[str, Any]:
        request = SaleRequest(
            id=f"DEMO-{next(self._sale_ids):06d}",
            occurred_at=self.clock.now,
            currency=self.shop.currency,
            lines=lines,
            card_number=shopper.card if shopper else None,
            cashier=self.rng.choice(CASHIERS),
            rewards=tuple(rewards),
        )
        self.clock.now = request.occurred_at + dt.timedelta(seconds=2)  # recorded a moment later
        response = record_sale(self.shop, request, till_id=self.till_id, till_name=TILL)
        self.result.sales += 1
        return response

    def after_sale(self, sale_id: str) -> None:
        rng = self.rng
        self.card_sales.append(sale_id)
        if rng.random() < 0.03:
            self.at(self.clock.now + dt.timedelta(days=rng.randint(1, 7), hours=rng.randint(0, 5)), "return", sale_id)
        if rng.random() < 0.03:
            self.at(self.clock.now + dt.timedelta(hours=rng.randint(2, 60)), "rating", sale_id)

    def on_return(self, sale_id: str) -> None:
        rng = self.rng
        with self.shop.uow(read_only=True) as uow:
            sold = [(ln.sku, ln.quantity_milli) for ln in uow.transactions.lines(sale_id)]
        if rng.random() < 0.15:  # the whole basket comes back
            items = sold
        else:
            sku, qty = rng.choice(sold)
            items = [(sku, qty if qty < 1000 or qty % 1000 else max(1000, qty // 2 // 1000 * 1000))]
        request = ReturnRequest(
            id=f"DEMO-R{next(self._return_ids):05d}", occurred_at=self.clock.now, lines=items,
            cashier=rng.choice(CASHIERS),
        )
        record_return(self.shop, sale_id, request, till_id=self.till_id, till_name=TILL)
        self.result.returns += 1

    def on_rating(self, sale_id: str, *, poor: bool | None = None) -> None:
        rng = self.rng
        satisfaction = rng.choices((5, 4, 3, 2, 1), weights=(45, 30, 12, 8, 5))[0] if poor is None else rng.choice((1, 2))
        recommend = min(10, max(0, satisfaction * 2 + rng.randint(-1, 1)))
        comment = rng.choice(POOR_COMMENTS if satisfaction <= 2 else GOOD_COMMENTS)
        rating = record_feedback(
            self.shop, transaction_id=sale_id, satisfaction=satisfaction, recommend=recommend, comment=comment,
            complaint=satisfaction == 1,
        )
        self.rated.add(sale_id)
        self.result.ratings += 1
        if rating["follow_up_id"] and poor is None:
            self.at(self.clock.now + dt.timedelta(days=rng.randint(1, 6)), "resolve", (rating, satisfaction))

    def on_resolve(self, payload) -> None:
        rating, satisfaction = payload
        resolution = "Called the customer and apologised."
        if satisfaction == 1:
            with self.shop.uow(read_only=True) as uow:
                customer_id = uow.transactions.get(rating["transaction_id"]).customer_id
            adjust_points(self.shop, customer_id, 150, reason="Sorry about your last visit", user=MANAGER, role="manager")
            resolution += " Gave 150 goodwill points."
        resolve_follow_up(self.shop, rating["follow_up_id"], user=MANAGER, resolution=resolution)

    def on_expiry_run(self, _payload) -> None:
        self.result.expired_points += expire_points(self.shop)["points"]

    def rate_recent_visits_poorly(self, count: int) -> None:
        """A few poor ratings from the last days, still open, so the cashier screen shows follow-ups."""
        recent = [sale_id for sale_id in self.card_sales[-60:] if sale_id not in self.rated]
        for sale_id in self.rng.sample(recent, min(count, len(recent))):
            self.on_rating(sale_id, poor=True)


def _in_year(day: dt.date, year: int) -> dt.date:
    if day.month == 2 and day.day == 29:
        return dt.date(year, 2, 28)
    return day.replace(year=year)
