"""The till's JSON API under ``/api/v1``. Views translate HTTP to use cases and nothing more."""
from __future__ import annotations


import base64

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ..services import customers as customer_svc
from ..services import feedback as feedback_svc
from ..services import points as points_svc
from ..domain.errors import Conflict
from ..services import programme as programme_svc
from ..services import receipts as receipt_svc
from ..services import transactions as tx_svc
from ..services.access import authenticate_till
from ..services.summary import card_summary
from . import schemas as S
from .errors import PROBLEM, problem

blp = Blueprint("till", __name__, url_prefix="/api/v1", description="The till's API: customers, cards, sales, returns, rewards, feedback.")
PUBLIC_ENDPOINTS = {"till.health"}


def services():
    return current_app.extensions["pos_loyalty"]


def shop():
    return services().shop


# The services build the answers of the checkout, the card lookup and the other transaction views
# in the documented shape already, so marshmallow's dump of them changes nothing (and cost 0.15 ms
# of a ten-line checkout in the API layer). They are sent as they are whenever the schema's test says
# the dump would give them back unchanged; otherwise flask-smorest dumps them as before. The
# schemas stay on the decorators, for the OpenAPI document. tests/test_api_fast_paths.py holds
# the proof on real answers.
_TRANSACTION_AS_IS = S.dumped_as_is(S.TransactionOut())
SALE_SCHEMA = S.SaleSchema()  # one instance for every request (webargs builds one per request from a class); counter.py uses it too
_CARD_SUMMARY_AS_IS = S.dumped_as_is(S.CardSummaryOut())


def _as_is(answer, status: int, as_is):
    """``answer`` as ``@blp.response`` would send it (``jsonify`` of the dump, with this status),
    without the dump when ``as_is`` says it would change nothing (flask-smorest passes a
    ``Response`` through)."""
    if not as_is(answer):
        return answer
    response = current_app.json.response(answer)
    response.status_code = status
    return response


@blp.before_request
def _require_till_token():
    if request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(401, "send the till's token as 'Authorization: Bearer TOKEN' (see `pos-loyalty till add`)")
    till = authenticate_till(shop(), token.strip())
    if till is None:
        return problem(401, "this till token is unknown or has been revoked")
    g.till = till
    return None


# -- health ----------------------------------------------------------------------------------------


@blp.route("/health")
@blp.doc(security=[])
@blp.response(200, S.HealthOut)
@blp.alt_response(503, schema=S.HealthOut, description="The database cannot be reached or its schema is not current")
def health():
    """Version, database reachability and schema revision (no token needed)."""
    body, ok = current_app.extensions["pos_loyalty"].health()
    return body, (200 if ok else 503)


# -- customers and cards ---------------------------------------------------------------------------


@blp.route("/customers")
class CustomersView(MethodView):
    @blp.arguments(S.SearchArgs, location="query")
    @blp.response(200, S.CustomerOut(many=True))
    def get(self, args):
        """Find customers by card number, phone, email or name."""
        return customer_svc.search_customers(shop(), args["q"], limit=args["limit"])

    @blp.arguments(S.CustomerCreateSchema)
    @blp.response(201, S.CustomerOut)
    @blp.alt_response(409, schema=S.Problem, content_type=PROBLEM, description="The email, phone or card is already in use")
    def post(self, data):
        """Enrol a customer; a card number is issued unless one is given."""
        card = data.pop("card_number", None)
        return customer_svc.enrol_customer(shop(), data, card_number=card, actor=f"till:{g.till.name}")


@blp.route("/customers/<int:customer_id>")
class CustomerView(MethodView):
    @blp.response(200, S.CustomerOut)
    @blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
    def get(self, customer_id):
        """A customer's profile, preferences and cards."""
        return customer_svc.get_customer(shop(), customer_id)

    @blp.arguments(S.CustomerUpdateSchema)
    @blp.response(200, S.CustomerOut)
    @blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
    @blp.alt_response(409, schema=S.Problem, content_type=PROBLEM)
    def patch(self, data, customer_id):
        """Change some of a customer's profile and preferences."""
        return customer_svc.update_customer(shop(), customer_id, data, actor=f"till:{g.till.name}")


@blp.route("/customers/<int:customer_id>/cards", methods=["POST"])
@blp.arguments(S.IssueCardSchema)
@blp.response(201, S.CardOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
def issue_card(data, customer_id):
    """Issue another card on the same account (e.g. after a loss)."""
    card = customer_svc.issue_card(shop(), customer_id, card_number=data.get("card_number"), actor=f"till:{g.till.name}")
    return {"number": card["number"], "status": card["status"]}


@blp.route("/cards/<string:card_number>")
@blp.response(200, S.CardSummaryOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM, description="Unknown card")
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM, description="Blocked card")
def get_card(card_number):
    """Everything the cashier screen shows for a scanned card."""
    return _as_is(card_summary(shop(), card_number), 200, _CARD_SUMMARY_AS_IS)


@blp.route("/cards/<string:card_number>/block", methods=["POST"])
@blp.arguments(S.BlockCardSchema)
@blp.response(200, S.CardOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM)
def block_card(data, card_number):
    """Block a lost card; the account and its points stay."""
    return customer_svc.block_card(shop(), card_number, reason=data["reason"], actor=data["user"])


@blp.route("/customers/<int:customer_id>/transactions")
@blp.arguments(S.LimitArgs, location="query")
@blp.response(200, S.TransactionListOut(many=True))
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
def customer_transactions(args, customer_id):
    """The customer's purchase history, newest first."""
    return points_svc.transactions_of(shop(), customer_id, limit=args["limit"])


@blp.route("/customers/<int:customer_id>/ledger")
@blp.arguments(S.LimitArgs, location="query")
@blp.response(200, S.LedgerEntryOut(many=True))
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
def customer_ledger(args, customer_id):
    """The customer's points ledger, newest first, each entry with its cause."""
    return points_svc.ledger_of(shop(), customer_id, limit=args["limit"])


@blp.route("/customers/<int:customer_id>/adjustments", methods=["POST"])
@blp.arguments(S.AdjustmentSchema)
@blp.response(201, S.AdjustmentOut)
@blp.alt_response(403, schema=S.Problem, content_type=PROBLEM, description="Beyond the cashier's goodwill limit")
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
def adjust(data, customer_id):
    """Goodwill points from the cashier, with who and why (within the cashier's limit)."""
    return points_svc.adjust_points(shop(), customer_id, data["points"], reason=data["reason"], user=data["user"], role="cashier")


# -- transactions ----------------------------------------------------------------------------------


def _sale_request(data) -> tx_svc.SaleRequest:
    return tx_svc.SaleRequest(
        id=data["id"],
        occurred_at=data["occurred_at"],
        currency=data["currency"],
        card_number=data.get("card_number"),
        cashier=data.get("cashier"),
        rewards=tuple(data.get("rewards") or ()),
        lines=tuple(
            tx_svc.LineInput(
                sku=ln["sku"],
                description=ln["description"],
                category=ln.get("category"),
                quantity_milli=ln["quantity"],
                unit_price=ln["unit_price"],
                line_discount=ln.get("line_discount", 0),
            )
            for ln in data["lines"]
        ),
    )


@blp.route("/transactions", methods=["POST"])
@blp.arguments(SALE_SCHEMA)
@blp.response(201, S.TransactionOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM, description="Unknown card")
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM, description="Insufficient points, blocked card, or the id used for a different sale")
def record_sale(data):
    """Record a sale: price the rewards, award and redeem points. Retrying with the same id and
    body returns the same answer and writes nothing. With a receipt printer configured, the
    receipt is printed after the sale is committed; a printer fault leaves it queued."""
    answer = tx_svc.record_sale(shop(), _sale_request(data), till_id=g.till.id, till_name=g.till.name)
    printer = services().printer
    if printer is not None and not answer.get("replayed"):
        printer.submit(answer["id"])
    return _as_is(answer, 201, _TRANSACTION_AS_IS)


@blp.route("/transactions/<string:transaction_id>")
@blp.response(200, S.TransactionOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
def get_transaction(transaction_id):
    """A recorded sale or return, as answered when it was recorded."""
    return _as_is(tx_svc.get_transaction(shop(), transaction_id), 200, _TRANSACTION_AS_IS)


@blp.route("/transactions/<string:transaction_id>/returns", methods=["POST"])
@blp.arguments(S.ReturnSchema)
@blp.response(201, S.TransactionOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM)
def record_return(data, transaction_id):
    """Return lines of a sale by SKU and quantity; reverses exactly the points they earned."""
    request_ = tx_svc.ReturnRequest(
        id=data["id"],
        occurred_at=data["occurred_at"],
        cashier=data.get("cashier"),
        lines=tuple((ln["sku"], ln["quantity"]) for ln in data["lines"]),
    )
    answer = tx_svc.record_return(shop(), transaction_id, request_, till_id=g.till.id, till_name=g.till.name)
    return _as_is(answer, 201, _TRANSACTION_AS_IS)


@blp.route("/transactions/<string:transaction_id>/claim", methods=["POST"])
@blp.arguments(S.ClaimSchema)
@blp.response(200, S.TransactionOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM, description="Already claimed, returned, or too old")
def claim(data, transaction_id):
    """A card shown after an anonymous sale collects its points (once, within the claim window),
    with the welcome and birthday bonuses a card sale would have earned."""
    return _as_is(tx_svc.claim_transaction(shop(), transaction_id, data["card_number"]), 200, _TRANSACTION_AS_IS)


# -- rewards and feedback --------------------------------------------------------------------------


@blp.route("/rewards")
@blp.response(200, S.RewardOut(many=True))
def rewards():
    """The rewards catalogue (active rewards)."""
    return programme_svc.list_rewards(shop(), active_only=True)


@blp.route("/feedback", methods=["POST"])
@blp.arguments(S.FeedbackSchema)
@blp.response(201, S.FeedbackOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM, description="This visit was already rated")
def feedback(data):
    """Rate a visit; a poor rating or a complaint opens a follow-up the cashier will see."""
    return feedback_svc.record_feedback(shop(), **data)


@blp.route("/follow-ups/<int:follow_up_id>/resolve", methods=["POST"])
@blp.arguments(S.ResolveSchema)
@blp.response(200, S.ResolveOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM)
def resolve(data, follow_up_id):
    """Close a follow-up, saying who and how."""
    return feedback_svc.resolve_follow_up(shop(), follow_up_id, user=data["user"], resolution=data["resolution"])


# -- receipts --------------------------------------------------------------------------------------


@blp.route("/transactions/<string:transaction_id>/receipt", methods=["POST"])
@blp.response(202, S.PrintJobOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
@blp.alt_response(409, schema=S.Problem, content_type=PROBLEM, description="No receipt printer is configured on this till")
def reprint(transaction_id):
    """Print (again) the receipt of a recorded sale or return; answers at once with the queued job."""
    printer = services().printer
    if printer is None:
        raise Conflict("no receipt printer is configured on this till (setting printer_url)", field="transaction_id")
    return printer.submit(transaction_id)


@blp.route("/transactions/<string:transaction_id>/loyalty-block")
@blp.response(200, S.LoyaltyBlockOut)
@blp.alt_response(404, schema=S.Problem, content_type=PROBLEM)
def loyalty_block(transaction_id):
    """The customer's points statement for a till that prints its own receipt: text lines and
    ESC/POS bytes (base64) to append. Empty for an anonymous sale."""
    from drivers.printer import loyalty_block_bytes

    settings = services().settings
    block = receipt_svc.loyalty_block_for(shop(), transaction_id, services().receipt_options)
    if block is None:
        return {"lines": [], "escpos_base64": ""}
    return {
        "lines": block.text_lines(),
        "escpos_base64": base64.b64encode(loyalty_block_bytes(block, settings.printer_profile)).decode(),
    }
