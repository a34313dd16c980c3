"""``Later``: an answer to be had later, for reads a unit of work sends together.

Plain Python, imported by the persistence layer (whose ``..._later`` reads return one) and by the
services (which make their own from those). On PostgreSQL, reads sent inside a unit of work's
``in_one_trip`` go to the server without waiting for each answer; the end of the block waits
once for all of them, and each ``get()`` after it reads its own (``persistence/uow.py``).
"""
from __future__ import annotations

from typing import Any, Callable


class Later:
    """A read's answer, made by ``convert`` from what ``source.rows()`` gives when first asked for
    (``get()``; the same answer each time). ``done`` holds an answer had already; ``lazy`` computes
    one on the first ``get()``, or never if nobody asks; ``then`` makes another answer of this one."""

    __slots__ = ("_source", "_convert", "_value")

    def __init__(self, source: Any, convert: Callable[[Any], Any]) -> None:
        self._source, self._convert, self._value = source, convert, None

    @classmethod
    def done(cls, value: Any) -> "Later":
        later = cls(None, _same)
        later._value = value
        return later

    @classmethod
    def lazy(cls, compute: Callable[[], Any]) -> "Later":
        return cls(_Thunk(compute), _same)

    def then(self, convert: Callable[[Any], Any]) -> "Later":
        return Later.lazy(lambda: convert(self.get()))

    def get(self) -> Any:
        source = self._source
        if source is not None:
            self._value = self._convert(source.rows())  # (if this raises, the next get() tries again and raises too)
            self._source = None
        return self._value


class _Thunk:
    __slots__ = ("rows",)

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.rows = compute


def _same(value: Any) -> Any:
    return value
