"""Writes access.log: two days of a small API's nginx log in nginx's "main" format
(combined + "$http_x_forwarded_for"), half of the clients behind the load balancer
(10.0.0.5). Deterministic: run it again and the same file comes out."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

CLIENTS = {  # address -> (country by the embedded RIR data, share of the traffic)
    "8.8.8.8": ("US", 30),
    "13.107.42.14": ("US", 14),
    "81.2.69.142": ("GB", 12),
    "2.2.2.2": ("SE", 8),
    "51.15.0.1": ("FR", 8),
    "114.114.114.114": ("CN", 7),
    "223.5.5.5": ("CN", 3),
    "2400:da00::1": ("CN", 2),
    "77.88.8.8": ("RU", 4),
    "2a02:6b8::1": ("RU", 2),
    "1.36.0.1": ("HK", 5),
    "37.32.0.1": ("IR", 2),
    "133.242.0.1": ("JP", 3),
}
ROUTES = [
    ("GET", "/v1/models", 30),
    ("POST", "/v1/chat/completions", 40),
    ("GET", "/v1/files/{}", 10),
    ("GET", "/docs/{}", 10),
    ("GET", "/healthz", 10),
]
# Who calls the API from each address ($remote_user: the API key's account, as an auth module
# in front of the app logs it). Picked by line number, not by the random generator, so that
# every other field stays what it was. Pages that need no key log "-".
ACCOUNTS = {
    "8.8.8.8": ["org_acme", "org_brightline", "org_corvid"],
    "13.107.42.14": ["org_acme"],
    "81.2.69.142": ["org_dunmore", "org_ealing"],
    "2.2.2.2": ["org_fjord"],
    "51.15.0.1": ["org_gironde"],
    "114.114.114.114": ["org_huaxin", "org_lotus"],
    "223.5.5.5": ["org_huaxin"],
    "2400:da00::1": ["org_jade"],
    "77.88.8.8": ["org_kama", "org_volga"],
    "2a02:6b8::1": ["org_volga"],
    "1.36.0.1": ["org_lotus", "org_harbour"],
    "37.32.0.1": ["org_persis"],
    "133.242.0.1": ["org_sakura"],
}
AGENTS = ["python-requests/2.32.3", "curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)"]


def main() -> None:
    rng = random.Random(709)
    start = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
    peers = list(CLIENTS)
    weights = [CLIENTS[p][1] for p in peers]
    lines = []
    moment = start
    for n in range(400):
        moment += timedelta(seconds=rng.randrange(1, 420))
        client = rng.choices(peers, weights)[0]
        method, route, _ = rng.choices(ROUTES, [r[2] for r in ROUTES])[0]
        path = route.format(rng.choice(["quickstart", "limits", "file-4Qz", "file-9Lm"]))
        query = f"?page={rng.randrange(1, 4)}" if method == "GET" and rng.random() < 0.3 else ""
        stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
        via_lb = rng.random() < 0.5
        peer, forwarded = ("10.0.0.5", client) if via_lb else (client, "-")
        status = 200 if method == "GET" else 201
        agent = rng.choice(AGENTS)
        names = ACCOUNTS[client]
        user = names[n % len(names)] if path.startswith("/v1/") else "-"
        lines.append(
            f'{peer} - {user} [{stamp}] "{method} {path}{query} HTTP/1.1" {status} '
            f'{rng.randrange(200, 9000)} "-" "{agent}" "{forwarded}"'
        )
        if n == 120:  # a TLS handshake sent to the plain-HTTP port, as nginx logs it
            lines.append(
                f'198.51.100.7 - - [{stamp}] "\\x16\\x03\\x01\\x00\\xF1\\x01" 400 157 "-" "-" "-"'
            )
        if n == 300:  # a line cut when the disk filled up
            lines.append(f'8.8.8.8 - - [{stamp}] "GET /v1/mod')
    Path(__file__).with_name("access.log").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
