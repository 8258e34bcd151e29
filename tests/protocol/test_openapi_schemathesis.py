"""schemathesis against the live local server, from the committed OpenAPI document.

A real ``render-workflows dev`` (:class:`render_sdk.testing.LocalServer`) runs
``examples/tasks.py`` on loopback with an API key. Every operation of the document gets
generated requests (a bounded, derandomized number per operation), and every answer must
match the document: no 5xx, a documented status code, the documented content type, a
body that validates against the documented schema, and 405 with ``Allow`` for a method
the path does not have. A second test sends real data (a
finished ``add_squares(3, 4)`` run, a stored object) through the same checks, so the
success schemas are checked on real bodies too, not only on the errors random ids get.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from render_sdk.testing import LocalServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
API_KEY = "rnd_schemathesis-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Generated requests per operation: enough to reach every parameter's edge cases
#: (empty, huge, unicode, wrong types) and bounded so the module runs in well under a
#: minute on two loaded cores.
MAX_EXAMPLES = 25
#: Every answer must match the document, and a method a path does not have must get 405
#: with ``Allow``. Left out, because they test rules the API does not have:
#: ``positive_data_acceptance`` (the annotations carry no validation rules, such as the
#: known regions, the owner id syntax, ``limit`` bounds or ``direction`` values, so values
#: the document allows may rightly get 400) and ``negative_data_rejection`` (unknown query
#: parameters are ignored and an empty one counts as absent, as decoders ignore unknown
#: keys, so some requests outside the document rightly succeed).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    unsupported_method,
]

DOCUMENT_TEXT = (resources.files("render_sdk.devserver") / "openapi.json").read_text()
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT_TEXT))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    app_dir = tmp_path_factory.mktemp("openapi-app")
    shutil.copy(EXAMPLES / "tasks.py", app_dir / "tasks.py")
    with LocalServer(app="tasks:app", cwd=app_dir, api_key=API_KEY) as local:
        yield local


def test_served_document_is_the_committed_one_and_needs_no_key(server: LocalServer) -> None:
    answer = httpx.get(f"{server.url}/openapi.json")  # no Authorization header
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.text == DOCUMENT_TEXT
    # The API itself does need the key.
    assert httpx.get(f"{server.url}/v1/tasks").status_code == 401


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_generated_requests_match_the_document(case: Any, server: LocalServer) -> None:
    case.call_and_validate(base_url=server.url, headers=AUTH, checks=CHECKS, timeout=30)


def _validate(case: Any, server: LocalServer) -> Any:
    return case.call_and_validate(base_url=server.url, headers=AUTH, checks=CHECKS, timeout=30)


def _operation(path: str, method: str) -> Any:
    return schema[path][method]


def test_real_data_matches_the_document(server: LocalServer) -> None:
    started = _validate(
        _operation("/v1/task-runs", "POST").Case(
            body={"task": "add_squares", "input": [3, 4]}, media_type="application/json"
        ),
        server,
    )
    run_id = started.json()["id"]
    # The event stream ends once the run is terminal; its frames carry TaskRunDetails.
    stream = _validate(
        _operation("/v1/task-runs/events", "GET").Case(query={"taskRunIds": [run_id]}), server
    )
    assert b"task.completed" in stream.content
    details = _validate(
        _operation("/v1/task-runs/{taskRunId}", "GET").Case(path_parameters={"taskRunId": run_id}),
        server,
    ).json()
    assert details["status"] == "completed"
    assert details["results"] == [25]
    runs = _validate(_operation("/v1/task-runs", "GET").Case(query={"limit": 5}), server).json()
    assert run_id in [item["taskRun"]["id"] for item in runs]
    tasks = _validate(_operation("/v1/tasks", "GET").Case(), server).json()
    assert {item["task"]["name"] for item in tasks} >= {"square", "add_squares"}
    task_id = tasks[0]["task"]["id"]
    _validate(
        _operation("/v1/tasks/{taskId}", "GET").Case(path_parameters={"taskId": task_id}), server
    )
    _validate(_operation("/v1/logs", "GET").Case(query={"taskRun": [run_id]}), server)
    # Canceling a finished run is a documented 409.
    canceled = _validate(
        _operation("/v1/task-runs/{taskRunId}", "DELETE").Case(
            path_parameters={"taskRunId": run_id}
        ),
        server,
    )
    assert canceled.status_code == 409

    where = {"ownerId": "tea-openapi", "region": "oregon", "key": "dir/hello.txt"}
    upload = _validate(
        _operation("/v1/objects/{ownerId}/{region}/{key}", "PUT").Case(
            path_parameters=where, body={"sizeBytes": 5}, media_type="application/json"
        ),
        server,
    ).json()
    assert httpx.put(upload["url"], content=b"hello").status_code == 200
    download = _validate(
        _operation("/v1/objects/{ownerId}/{region}/{key}", "GET").Case(path_parameters=where),
        server,
    ).json()
    assert httpx.get(download["url"]).content == b"hello"
    listed = _validate(
        _operation("/v1/objects/{ownerId}/{region}", "GET").Case(
            path_parameters={"ownerId": "tea-openapi", "region": "oregon"}
        ),
        server,
    ).json()
    assert [item["object"]["key"] for item in listed["items"]] == ["dir/hello.txt"]
    deleted = _validate(
        _operation("/v1/objects/{ownerId}/{region}/{key}", "DELETE").Case(path_parameters=where),
        server,
    )
    assert deleted.status_code == 204
