"""Property-based tests generated from the service's own OpenAPI document
(schemathesis on hypothesis), against a real uvicorn serving a database with
records in it.

The property, for every operation and every generated request, valid or not:
no 5xx; the status code is one the document lists; the body matches the
documented schema and content type; and a request the schema rejects gets a
4xx. Hypothesis runs derandomized (the same examples every run), so a
failure is reproducible and the test cannot fail at random.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app
from tests.factory import now_ms, simulate
from tests.server import Server

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("openapi") / "data"
    # Queue room for every graph request of a test run, so no 503 hides a bug.
    with Server(data, LOGGER_RENDER_QUEUE="100") as server:
        records = simulate(now_ms() - 3_600_000, 120, per_type=1, seed=12, run_id="e" * 32)
        assert httpx.post(server.url + "/logs", json=records, timeout=60).status_code == 200
        yield server


# The document the service serves at /openapi.json (the app builds it; the
# test below checks the server serves exactly this one). /events is an
# endless stream: it has its own tests.
DOCUMENT = create_app(Settings(data_dir="/nonexistent")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/events")


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("LOGGER_PROPERTY_EXAMPLES", "60")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_with_a_5xx(case, server: Server):
    case.call_and_validate(base_url=server.url, checks=CHECKS)


def test_the_document_describes_the_body_of_post_logs(server: Server):
    document = httpx.get(server.url + "/openapi.json").json()
    assert document == DOCUMENT
    body = document["paths"]["/logs"]["post"]["requestBody"]["content"]["application/json"]
    refs = str(body["schema"])
    assert "#/components/schemas/LogRecordIn" in refs
    record = document["components"]["schemas"]["LogRecordIn"]
    assert set(record["required"]) == {"id", "time", "host", "cycle", "event"}
    assert "run_id" in record["properties"]
    responses = document["paths"]["/logs"]["post"]["responses"]
    assert {"401", "413", "415", "422", "503"} <= set(responses)


def test_the_document_describes_the_body_of_post_alerts():
    body = DOCUMENT["paths"]["/alerts"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/AlertmanagerWebhookIn"}
    note = DOCUMENT["components"]["schemas"]["AlertmanagerWebhookIn"]
    assert {"version", "status", "alerts"} <= set(note["required"])
    assert set(DOCUMENT["components"]["schemas"]["AlertIn"]["required"]) == {
        "status",
        "labels",
        "startsAt",
    }
    assert {"401", "413", "415", "422", "503"} <= set(
        DOCUMENT["paths"]["/alerts"]["post"]["responses"]
    )
