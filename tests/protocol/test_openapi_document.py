"""The committed OpenAPI document: valid OpenAPI 3.1, and exactly the REST routes the server has.

`build_tools/codegen.py --check` proves the document is what the descriptors make; these
tests prove that what they make is a valid document and that it describes the server's
routes, no more and no fewer.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Route

from render_sdk.devserver._api import OPENAPI_PATH, create_app
from render_sdk.devserver._orchestrator import Orchestrator
from render_sdk.devserver._socket import make_socket_dir
from render_sdk.devserver._store import Store

#: Server routes that are not rpcs of a REST service: the dashboard's page, assets and
#: its own four API routes (see render_sdk/devserver/_dashboard.py), and the document.
NOT_REST_RPCS = frozenset(
    {
        ("GET", "/"),
        ("GET", "/_dashboard/{}"),
        ("GET", "/v1/dashboard/info"),
        ("GET", "/v1/dashboard/events"),
        ("GET", "/v1/dashboard/runs"),
        ("GET", "/v1/dashboard/logs"),
        ("GET", OPENAPI_PATH),
    }
)
_METHODS = ("get", "put", "post", "delete", "patch")


def committed() -> dict[str, Any]:
    text = (resources.files("render_sdk.devserver") / "openapi.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def _shape(path: str) -> str:
    """A path with every parameter as ``{}`` (Starlette and OpenAPI name them differently)."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def document_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (verb.upper(), _shape(path))
        for path, item in document["paths"].items()
        for verb in item
        if verb in _METHODS
    }


@pytest.fixture
def server_routes(tmp_path: Path) -> Any:
    store = Store(tmp_path / "db.sqlite3")
    sockets = make_socket_dir()
    orch = Orchestrator(
        store=store,
        launcher=None,  # type: ignore[arg-type]  # the routes are listed, never called
        socket_dir=sockets,
        report=lambda line: None,
    )
    app = create_app(orch, state_dir=tmp_path, secret=b"k" * 32)
    routes: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        for method in route.methods or ():
            if method != "HEAD":  # Starlette answers HEAD on every GET route itself
                routes.add((method, _shape(route.path)))
    yield routes
    store.close()
    shutil.rmtree(sockets)


def test_document_is_valid_openapi_3_1() -> None:
    document = committed()
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()


def test_document_covers_every_rest_route(server_routes: set[tuple[str, str]]) -> None:
    in_document = document_routes(committed())
    assert in_document, "the document has no operations"
    served = server_routes - NOT_REST_RPCS
    assert sorted(served - in_document) == [], "served but missing from the document"
    assert sorted(in_document - server_routes) == [], "in the document but not served"


def test_every_operation_is_an_rpc_with_errors_described() -> None:
    document = committed()
    ids: list[str] = []
    for path, item in document["paths"].items():
        for verb, op in item.items():
            ids.append(op["operationId"])
            responses = op["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert len(success) == 1, f"{verb} {path}: one success status, got {success}"
            for code in ("400", "404", "500"):
                assert responses[code] == {"$ref": f"#/components/responses/Error{code}"}
            secured = op.get("security", document["security"])
            assert (secured != []) == path.startswith("/v1/"), f"{verb} {path}: auth"
    assert len(ids) == len(set(ids)), "operationIds are unique"
    events = document["paths"]["/v1/task-runs/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    event = events["text/event-stream"]["schema"]
    assert set(event["required"]) == {"event", "id", "data"}
    assert event["properties"]["data"] == {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": "#/components/schemas/TaskRunDetails"},
    }


def test_schemas_follow_the_wire_annotations() -> None:
    schemas = committed()["components"]["schemas"]
    details = schemas["TaskRunDetails"]
    # Inline JSON under its annotated wire name, free-form (any JSON value, null included).
    assert details["properties"]["results"].keys() <= {"description"}
    assert details["properties"]["input"].keys() <= {"description"}
    assert "resultsJson" not in details["properties"]
    # The unknown-status sibling never travels.
    assert "unknownStatus" not in details["properties"]
    # Always-present fields are required; optional and message fields are not.
    assert {"id", "taskId", "status", "results", "input", "attempts"} <= set(details["required"])
    assert not {"error", "startedAt", "completedAt"} & set(details["required"])
    assert schemas["TaskRunStatus"] == {
        "type": "string",
        "enum": [
            "unspecified",
            "pending",
            "running",
            "completed",
            "succeeded",
            "failed",
            "canceled",
            "paused",
        ],
        "description": "The status of a task run or of one of its attempts.",
    }
    assert "TaskRunEventsRequest" not in schemas  # query containers are not bodies
