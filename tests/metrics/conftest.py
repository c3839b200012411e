"""Shared by the metrics tests: a scrape of the geofence collector in a registry of its own
(fixtures: with --import-mode=importlib a test module cannot import this one by name)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from geofence.metrics._prometheus import GeofenceCollector

_names = itertools.count(1)


def _scrape(now: datetime | None = None) -> list[Sample]:
    """Every geofence sample, as a scrape of this process would see it now."""
    registry = CollectorRegistry()
    registry.register(GeofenceCollector(now=now))
    return [sample for family in registry.collect() for sample in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels are exactly ``labels``, or None."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
    return found[0] if found else None


@pytest.fixture
def unique() -> str:
    """A rule name no other test uses: the process's counts are shared by every test."""
    return f"rule-{next(_names)}"


Scrape = Callable[..., list[Sample]]
Value = Callable[..., "float | None"]


@pytest.fixture
def scrape() -> Scrape:
    return _scrape


@pytest.fixture
def value() -> Value:
    return _value
