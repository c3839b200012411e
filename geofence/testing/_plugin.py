"""The pytest plugin (entry point ``pytest11``): the ``geofence`` fixture and marker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geofence.testing._kit import Kit


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "geofence(country=None, subdivisions=(), anonymizers=(), asn=None, table=None): "
        "what the geofence fixture pretends for the test",
    )


@pytest.fixture
def geofence(request: pytest.FixtureRequest) -> Iterator[Kit]:
    """Every engine, for this test only, decides clients where the test says they are."""
    with Kit() as kit:
        marker = request.node.get_closest_marker("geofence")
        if marker is not None:
            options = dict(marker.kwargs)
            table = options.pop("table", None)
            if options:
                kit.pretend(**options)
            if table is not None:
                kit.table(table)
        yield kit
