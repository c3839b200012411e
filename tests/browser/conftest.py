"""Chromium tests: each starts a real server on loopback and a headless Chromium against it.

They skip, saying why, when ``chromium`` is not installed; CI installs it (scripts/test).
Screenshots are kept in the artifacts folder (``$GEOFENCE_ARTIFACTS`` or ``.artifacts/``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import require_chromium
from servers import serve

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_chromium()


@pytest.fixture(scope="module")
def demo_url(chromium: str) -> Iterator[str]:
    """``geofence demo``'s app under a real uvicorn, as ``geofence demo`` serves it."""
    with serve(
        "uvicorn",
        "geofence.cli.demo:create_app",
        cwd=HERE,
        extra_args=["--factory", "--no-proxy-headers"],
    ) as url:
        yield url


@pytest.fixture(scope="module")
def proxied_demo_url(chromium: str) -> Iterator[str]:
    """The demo behind a pretend reverse proxy on loopback that says the client is
    175.16.199.1 (China): what a browser in China gets from ``/web/home``."""
    with serve(
        "uvicorn",
        "proxied_demo:create_app",
        cwd=HERE,
        extra_args=["--factory", "--no-proxy-headers"],
    ) as url:
        yield url
