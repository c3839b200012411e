"""The kit behind the ``geofence`` pytest fixture, usable without pytest as a context manager.

While a kit is active, every engine (those built before and those built during it) decides
clients by what the test said (:meth:`Kit.pretend`, :meth:`Kit.table`) instead of by their
address, records each decision it gives (:attr:`Kit.decisions`), and answers every request
anew (its caches are bypassed, so a test sees each decision). Leaving the kit undoes all of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import ip_network
from types import TracebackType
from typing import Any

from geofence import _overlay
from geofence._model import Decision
from geofence.clientip._addresses import IP, NetworkSet
from geofence.geoip._records import GeoRecord

Found = tuple[GeoRecord, frozenset[str], "int | None"]
# What table() takes for one network: "CN", ("UA", ["UA-43"]), ("US", [], ["vpn"]),
# ("US", [], [], 7018): country, subdivisions, anonymizers, autonomous system number.
Place = str | tuple[Any, ...]
_METHODS = ("answer", "aanswer", "decide", "adecide", "cached")


def _found(place: Place) -> Found:
    if isinstance(place, str):
        place = (place,)
    country, subdivisions, anonymizers, asn = (*place, (), (), None, None, None)[:4]
    if country is not None:
        country = str(country).upper()
    return (
        GeoRecord(True, country, tuple(str(s).upper() for s in subdivisions or ())),
        frozenset(anonymizers or ()),
        asn,
    )


class Kit:
    """Pretend clients are somewhere, for every engine, for as long as the kit is active."""

    def __init__(self) -> None:
        #: Every decision an engine gave while the kit was active, oldest first.
        self.decisions: list[Decision] = []
        self._everyone: Found | None = None
        self._networks: list[tuple[NetworkSet, Found]] = []
        self._active = False

    # -- what the test says ------------------------------------------------------------------

    def pretend(
        self,
        country: str | None = None,
        subdivisions: Iterable[str] = (),
        anonymizers: Iterable[str] = (),
        asn: int | None = None,
    ) -> None:
        """Every client of every engine is in ``country`` (None: a record without a country),
        test-client peers (127.0.0.1, "testclient") included; exemptions still apply."""
        self._everyone = _found((country, tuple(subdivisions), tuple(anonymizers), asn))
        self._changed()

    def table(self, places: Mapping[str, Place]) -> None:
        """Addresses in these networks are where the table says; others are looked up as
        usual (``{"175.16.199.0/24": "CN", "2a02:d0c0::/32": ("UA", ["UA-43"])}``)."""
        self._networks = [
            (NetworkSet([ip_network(net, strict=False)]), _found(place))
            for net, place in places.items()
        ]
        self._changed()

    def reset(self) -> None:
        """Forget pretend() and table() (the decisions stay)."""
        self._everyone, self._networks = None, []
        self._changed()

    def lookup(self, ip: IP | None) -> Found | None:
        if ip is not None:
            for networks, found in self._networks:
                if ip in networks:
                    return found
        return self._everyone

    # -- assertions on a response (Django, Flask, httpx, requests) -----------------------------

    def assert_blocked(self, response: Any, status: int | None = None) -> Decision:
        code, headers = _status_and_headers(response)
        decision = self._last("block")
        expected = status or decision.status or 451
        assert code == expected, f"expected a {expected} block, got {code}"
        assert "no-store" in (headers("cache-control") or ""), "a block is never cacheable"
        return decision

    def assert_warned(self, response: Any) -> Decision:
        code, headers = _status_and_headers(response)
        decision = self._last("warn")
        assert code < 400, f"a warned request gets the app's answer, got {code}"
        assert "private" in (headers("cache-control") or ""), "a warning is never shared"
        if decision.enforce_from is not None:
            assert headers("sunset"), "a warning with a date carries Sunset"
        return decision

    def assert_allowed(self, response: Any) -> Decision:
        _, headers = _status_and_headers(response)
        decision = self._last("allow")
        assert not headers("sunset"), "an allowed response carries no Sunset"
        return decision

    def _last(self, action: str) -> Decision:
        assert self.decisions, "no engine decided anything while the kit was active"
        decision = self.decisions[-1]
        assert decision.action == action, (
            f"expected {action}, the last decision was {decision.action} "
            f"(reason {decision.reason}, rule {decision.rule})"
        )
        return decision

    # -- activation ----------------------------------------------------------------------------

    def __enter__(self) -> Kit:
        if _overlay.ACTIVE is not None:
            raise RuntimeError("a geofence testing kit is already active")
        _overlay.ACTIVE, _overlay.ADOPT = self.lookup, self._adopt
        self._active = True
        for engine in list(_overlay.ENGINES):
            self._adopt(engine)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _overlay.ACTIVE = _overlay.ADOPT = None
        self._active = False
        for engine in list(_overlay.ENGINES):
            for name in _METHODS:
                vars(engine).pop(name, None)
            _forget(engine)

    def _adopt(self, engine: Any) -> None:
        """Make ``engine`` record its decisions and answer each request anew."""
        record = self.decisions.append
        answer, aanswer = engine.answer, engine.aanswer
        decide, adecide = engine.decide, engine.adecide

        def recorded_answer(*args: Any, **kwargs: Any) -> Any:
            result = answer(*args, **kwargs)
            record(result.decision)
            return result

        async def recorded_aanswer(*args: Any, **kwargs: Any) -> Any:
            result = await aanswer(*args, **kwargs)
            record(result.decision)
            return result

        def recorded_decide(*args: Any, **kwargs: Any) -> Decision:
            result: Decision = decide(*args, **kwargs)
            record(result)
            return result

        async def recorded_adecide(*args: Any, **kwargs: Any) -> Decision:
            result: Decision = await adecide(*args, **kwargs)
            record(result)
            return result

        engine.answer, engine.aanswer = recorded_answer, recorded_aanswer
        engine.decide, engine.adecide = recorded_decide, recorded_adecide
        engine.cached = lambda *args, **kwargs: None  # every request reaches answer()
        _forget(engine)

    def _changed(self) -> None:
        if self._active:
            for engine in list(_overlay.ENGINES):
                _forget(engine)


def _forget(engine: Any) -> None:
    """Drop what ``engine`` decided before: it was decided on other facts."""
    engine._cache.clear()
    engine._verdicts.clear()
    ledger = engine._ledger
    if ledger is not None:
        ledger._copies.clear()


def _status_and_headers(response: Any) -> tuple[int, Any]:
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(response, "status", None)
    if not isinstance(status, int):
        raise TypeError(f"not a response the kit knows: {type(response).__name__}")
    headers = response.headers
    return status, headers.get
