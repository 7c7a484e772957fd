"""Random bad input, seeded: every answer is a 2xx or a 4xx, never a 500."""

from __future__ import annotations

import json
import random

from tests.factory import record

VALUES = [
    None,
    "",
    " ",
    "x" * 5000,
    "\u0000",
    "ü\u2028☃",
    "2026-13-45T99:99:99Z",
    "2026-11-29T01:23:45.678Z",
    "9999-12-31T23:59:59.999-23:59",
    "0001-01-01T00:00:00+23:59",
    -1,
    0,
    1,
    2**63,
    -(2**63) - 1,
    2**200,
    0.5,
    -0.0,
    1e308,
    -1e-308,
    True,
    False,
    [],
    [1, "a"],
    {},
    {"a": {"b": {"c": [None]}}},
    "kill",
    "cpu",
    "f" * 64,
]
FIELDS = [*record().keys(), "extra", "details"]
QUERY_NAMES = ["limit", "offset", "cursor", "container", "type", "event", "since", "until", "host"]


def mutate(rng: random.Random) -> object:
    rec = record()
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(FIELDS)
        if rng.random() < 0.2:
            rec.pop(field, None)
        else:
            rec[field] = rng.choice(VALUES)
    return rec if rng.random() < 0.5 else [record(), rec]


def test_random_records_never_cause_a_server_error(client):
    rng = random.Random(20261129)
    for _ in range(400):
        body = json.dumps(mutate(rng)).encode()
        if rng.random() < 0.15:  # damage the bytes too
            pos = rng.randrange(len(body))
            body = body[:pos] + bytes([rng.randrange(256)]) + body[pos + 1 :]
        r = client.post("/logs", content=body, headers={"content-type": "application/json"})
        assert r.status_code in (200, 422), (r.status_code, body[:300], r.text[:300])
    assert client.get("/healthz").status_code == 200
    # Whatever was accepted can be read back and exported.
    assert client.get("/logs", params={"limit": 1000}).status_code == 200
    for line in client.get("/logs/export").text.splitlines():
        json.loads(line)


def test_random_queries_never_cause_a_server_error(client):
    client.post("/logs", json=[record() for _ in range(20)])
    rng = random.Random(7)
    for _ in range(300):
        params = [
            (rng.choice(QUERY_NAMES), str(rng.choice(VALUES))) for _ in range(rng.randint(1, 4))
        ]
        r = client.get("/logs", params=params)
        assert r.status_code in (200, 422), (params, r.text[:300])
        r = client.get("/logs/export", params=params)
        assert r.status_code in (200, 422), (params, r.text[:300])


def test_random_graph_parameters_never_cause_a_server_error(client):
    client.post("/logs", json=[record(event="kill") for _ in range(5)])
    rng = random.Random(11)
    names = ["range", "since", "until", "width", "height"]
    extra = ["all", "1h", "15m", "9999999w", "999999w", "99999d", "1000", "-5", "1e10"]
    for _ in range(60):
        params = {
            rng.choice(names): str(rng.choice(VALUES + extra)) for _ in range(rng.randint(1, 3))
        }
        kind = rng.choice(["memory", "cpu", "kills"])
        r = client.get(f"/graphs/{kind}.png", params=params)
        assert r.status_code in (200, 422), (params, r.text[:300])
