"""Which schema revision a database is at, and the newest the migrations reach, told without
loading Alembic (a third of a second at every start-up and on the first health check): ``serve``
and the health check use these; ``migrate.py`` (which runs Alembic) has the reference versions,
and tests/test_cli.py proves both agree."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from sqlalchemy import Engine, inspect, text

_SCRIPT_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]\s*$", re.MULTILINE)
_SCRIPT_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(?:None|['\"]([^'\"]+)['\"])\s*$", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration's revision: read from the scripts' ``revision`` and ``down_revision``
    lines when they form one line of history, as they must (tests/test_migrations.py); Alembic's
    own answer otherwise."""
    import migrations

    revisions: dict[str, str | None] = {}
    for script in sorted((Path(migrations.__file__).resolve().parent / "versions").glob("*.py")):
        source = script.read_text(encoding="utf-8")
        revision, down = _SCRIPT_REVISION.findall(source), _SCRIPT_DOWN_REVISION.search(source)
        if script.name == "__init__.py" and not revision:
            continue
        if len(revision) != 1 or down is None or revision[0] in revisions:
            return _alembic_head()
        revisions[revision[0]] = down.group(1)
    heads = set(revisions) - set(revisions.values())
    if len(heads) != 1 or list(revisions.values()).count(None) != 1:
        return _alembic_head()
    return heads.pop()


def _alembic_head() -> str | None:
    from .migrate import head_revision as alembic_head

    return alembic_head()


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database (None: never migrated), as Alembic records it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(stamped) > 1:
        raise RuntimeError(f"the database is stamped with several revisions: {', '.join(sorted(stamped))}")
    return stamped[0] if stamped else None
