"""Schemathesis against the till API's own OpenAPI document: every operation, valid and invalid
requests, with the till's token.

No answer is a 5xx; every answer matches the status codes, content types, headers and bodies the
document promises; every request that breaks the document is refused with a 4xx. Runs on SQLite
only: these checks are about the API's edge, which is the same on either database. The examples
are derandomised, so a failure here fails the same way on the next run.
"""
from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from pos_loyalty.app import create_app
from pos_loyalty.services.access import add_till
from pos_loyalty.services.customers import enrol_customer
from pos_loyalty.services.points import adjust_points
from tests.support.factories import reward

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
]

@pytest.fixture
def fuzzed_api(tmp_path, sqlite_template):
    """The till API's document, loaded from the service on its own SQLite file with a till, a
    customer holding points and a reward, and the till's token on every request."""
    db_file = tmp_path / "loyalty.db"
    shutil.copyfile(sqlite_template, db_file)
    app = create_app(
        {"data_dir": tmp_path / "data", "database_url": f"sqlite:///{db_file}", "testing": True,
         "run_daily_expiry": False, "timezone": "Europe/Berlin", "currency": "EUR"}
    )
    shop = app.extensions["pos_loyalty"].shop
    token = add_till(shop, "till-1")[1]
    anna = enrol_customer(shop, {"name": "Anna Schmidt"})
    adjust_points(shop, anna["id"], 500, reason="opening balance", user="mia", role="manager")
    reward(shop, "Free coffee", points_cost=50)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.update(headers={"Authorization": f"Bearer {token}"})
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, database="none")
    schema.config.checks.update(included_check_names=CHECKS)
    yield schema
    app.extensions["pos_loyalty"].db.dispose()


def fuzz(operation, mode: GenerationMode) -> dict[str, str]:
    """Up to EXAMPLES_PER_OPERATION generated requests to one operation: for each kind of failure,
    the first request that showed it and what came back."""
    failures: dict[str, str] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.target])
    def check(case):
        response = case.call()
        try:
            case.validate_response(response)
        except FailureGroup as group:
            for failure in group.exceptions:
                answer = f"-> {response.status_code} {response.text[:500]}"
                failures.setdefault(failure.title, f"{failure}\n{case.as_curl_command()}\n{answer}")

    try:
        check()
    except Unsatisfiable:  # nothing in this operation can be broken (GET /health has no parameters)
        assert mode is GenerationMode.NEGATIVE
    return failures


def test_every_operation_answers_within_its_document_and_refuses_what_breaks_it(fuzzed_api):
    report = []
    operations = [result.ok() for result in fuzzed_api.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for kind, example in fuzz(operation, mode).items():
                report.append(f"--- {operation.label} ({mode.value}): {kind}\n{example}")
    assert not report, "\n\n".join(report)
