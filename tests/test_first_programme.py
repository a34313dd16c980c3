"""A fresh database gets the built-in programme as version 1, so the very first sale records the
version it was computed under (a sale with no version ties its points to no stored rules)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from pos_loyalty.app import create_app
from pos_loyalty.domain.programme import DEFAULT_PROGRAMME
from pos_loyalty.services.access import add_till
from pos_loyalty.services.programme import get_programme, programme_history, store_first_programme
from tests.support.factories import enrol, line, programme, sale

EXE = Path(sys.executable).with_name("pos-loyalty")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "pos_loyalty.cli"]


def init(data_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update({"POS_LOYALTY_DATA_DIR": str(data_dir), "XDG_DATA_HOME": str(data_dir.parent)})
    result = subprocess.run([*COMMAND, "init"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def stored_versions(data_dir: Path) -> list[tuple]:
    engine = create_engine(f"sqlite:///{data_dir / 'loyalty.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT id, created_by, created_at FROM programme_versions ORDER BY id"))]
    finally:
        engine.dispose()


def test_init_stores_the_built_in_programme_as_version_1_once_and_the_first_sale_records_it(tmp_path):
    data_dir = tmp_path / "till"
    first = init(data_dir)
    assert "programme version 1 saved: the built-in defaults, until a manager changes them" in first
    versions = stored_versions(data_dir)
    assert [(v[0], v[1]) for v in versions] == [(1, "pos-loyalty init")]

    again = init(data_dir)
    assert "programme version" not in again
    assert stored_versions(data_dir) == versions

    app = create_app({"data_dir": data_dir, "testing": True, "run_daily_expiry": False})
    try:
        shop = app.extensions["pos_loyalty"].shop
        saved = get_programme(shop)
        assert saved.version_id == 1 and saved.to_dict() == DEFAULT_PROGRAMME.to_dict()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {add_till(shop, 'till-1')[1]}"}
        bought = client.post("/api/v1/transactions", json=sale(line("COF", 1000), at=shop.now()), headers=headers).get_json()
        assert bought["programme_version"] == 1
    finally:
        app.extensions["pos_loyalty"].db.dispose()


def test_the_first_version_is_stored_only_where_none_is(shop):
    saved = store_first_programme(shop)
    assert saved is not None and saved.to_dict() == DEFAULT_PROGRAMME.to_dict()
    assert store_first_programme(shop) is None
    assert [h["version_id"] for h in programme_history(shop)] == [saved.version_id]
    assert programme_history(shop)[0]["changed"] == ["first version"]


def test_a_programme_a_manager_saved_is_never_joined_by_the_defaults(shop, api):
    managers = programme(shop, welcome_bonus=50)
    assert store_first_programme(shop) is None
    assert get_programme(shop).version_id == managers.version_id
    anna = enrol(api)
    assert api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()["programme_version"] == managers.version_id
