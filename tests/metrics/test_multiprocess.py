"""Prometheus multiprocess mode for real: gunicorn, two sync workers, one multiproc directory.

Each worker counts in its own memory and copies its counts into its files once a second and at
exit (geofence/metrics/_multiprocess.py); a scrape through MultiProcessCollector, whichever
worker answers it, shows the sum of both workers.

Both workers serve, by construction rather than by luck: a connection that has sent half a
request holds the worker that accepted it (a sync worker serves one connection at a time), so
every other request goes to the other worker; then the held request is finished.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from servers import serve

pytest.importorskip("flask")
pytest.importorskip("gunicorn")
httpx = pytest.importorskip("httpx")

from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pytestmark = pytest.mark.server

HERE = Path(__file__).parent
US, CN = "8.8.8.8", "114.114.114.114"  # in the embedded database
ALLOWED, BLOCKED = 7, 5  # requests besides the held one
SCRAPE_DEADLINE = 20.0  # seconds for the workers' copies to reach the files (once a second)

Counts = dict[tuple[str, str], float]  # (action, country) -> decisions


def decisions(samples: object) -> Counts:
    found: Counts = {}
    for sample in samples:  # type: ignore[attr-defined]
        if sample.name == "geofence_decisions_total":
            key = (sample.labels["action"], sample.labels["country"])
            found[key] = found.get(key, 0.0) + sample.value
    return found


def scraped(base_url: str) -> Counts | None:
    """The decisions a scrape shows; None when the scrape failed as prometheus_client's own
    multiprocess reader fails while a worker creates a file (it exists empty for an instant:
    client_python#1199, a 500 from /metrics), which the next scrape reads whole."""
    response = httpx.get(base_url + "/metrics/")
    if response.status_code == 500:
        return None
    text = response.text
    return decisions(s for f in text_string_to_metric_families(text) for s in f.samples)


@pytest.fixture(params=["fork", "preload"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn with two workers; "preload": the app (and its engine, and the copying
    thread) is loaded in the master before it forks, and each worker starts its own thread."""
    config = tmp_path / "geofence.json"
    config.write_text(
        json.dumps(
            {
                "client_ip": {"trusted_proxies": ["127.0.0.1/32"]},
                "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
                "metrics": {"prometheus": True},
            }
        )
    )
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env = {"GEOFENCE_TEST_CONFIG": str(config), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    with serve(
        "gunicorn",
        "metrics_gunicorn_app:app",
        cwd=HERE,
        env=env,
        extra_args=(
            "--workers",
            "2",
            "--graceful-timeout",
            "5",
            *(["--preload"] if request.param == "preload" else []),
        ),
    ) as url:
        yield url, multiproc


def test_a_scrape_shows_the_sum_of_both_workers(server: tuple[str, Path]) -> None:
    base_url, multiproc = server
    address = urlsplit(base_url)
    held = socket.create_connection((address.hostname, address.port), timeout=30)
    with held:
        # Half a request: the worker that accepts it waits for the rest.
        held.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + US.encode() + b"\r\n")
        served: dict[str, int] = {}
        for _ in range(ALLOWED):
            response = httpx.get(base_url + "/a", headers={"X-Forwarded-For": US})
            assert response.status_code == 200
            served[response.headers["x-worker"]] = served.get(response.headers["x-worker"], 0) + 1
        for _ in range(BLOCKED):
            response = httpx.get(base_url + "/b", headers={"X-Forwarded-For": CN})
            assert response.status_code == 451
        held.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := held.recv(65536):
            answer += chunk
    head = answer.decode("latin-1").split("\r\n\r\n")[0].lower()
    assert head.startswith("http/1.1 200")
    worker = next(line.split(": ")[1] for line in head.split("\r\n") if line.startswith("x-worker"))
    served[worker] = served.get(worker, 0) + 1
    assert len(served) == 2, f"one worker served everything: {served}"

    expected = {("allow", "US"): ALLOWED + 1.0, ("block", "CN"): float(BLOCKED)}
    deadline = time.monotonic() + SCRAPE_DEADLINE
    while (got := scraped(base_url)) != expected and time.monotonic() < deadline:
        pass  # the workers copy their counts once a second
    assert got == expected

    # Each worker's own file holds what that worker decided: the scrape was their sum.
    per_worker: dict[str, Counts] = {}
    for pid, count in served.items():
        files = [str(p) for p in multiproc.glob(f"counter_{pid}.db")]
        assert files, f"worker {pid} wrote no counter file"
        per_worker[pid] = decisions(
            s for m in MultiProcessCollector.merge(files, accumulate=True) for s in m.samples
        )
        assert per_worker[pid].get(("allow", "US")) == count
    blocked = sum(counts.get(("block", "CN"), 0.0) for counts in per_worker.values())
    assert blocked == BLOCKED


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """Run gunicorn, make blocked requests, stop it at once; the multiproc directory after."""
    config = tmp_path / "geofence.json"
    config.write_text(
        json.dumps(
            {
                "client_ip": {"trusted_proxies": ["127.0.0.1/32"]},
                "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
                "metrics": {"prometheus": True},
            }
        )
    )
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env = {"GEOFENCE_TEST_CONFIG": str(config), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    with serve(
        "gunicorn", "metrics_gunicorn_app:app", cwd=HERE, env=env, extra_args=("--workers", "2")
    ) as base_url:
        for _ in range(BLOCKED):
            assert httpx.get(base_url + "/b", headers={"X-Forwarded-For": CN}).status_code == 451
    return multiproc


def test_a_graceful_stop_writes_the_last_counts(stopped: Path) -> None:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(stopped))
    got = decisions(s for f in registry.collect() for s in f.samples)
    assert got == {("block", "CN"): float(BLOCKED)}
