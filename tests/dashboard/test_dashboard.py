"""The dashboard end to end: a real server, a real app, headless Chromium."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APP, ARTIFACTS

from render_sdk.testing import LocalServer

TIMEOUT_MS = 20_000


@pytest.fixture
def page(browser: Any, server: LocalServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context()
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"console errors: {errors}"


def start(server: LocalServer, task: str, input: Any) -> str:
    resp = httpx.post(f"{server.url}/v1/task-runs", json={"task": task, "input": input})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def status(server: LocalServer, run_id: str) -> str:
    return str(httpx.get(f"{server.url}/v1/task-runs/{run_id}").json()["status"])


def test_run_appears_and_completes_live(page: Any, server: LocalServer) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("#live:text('live')")
    run_id = start(server, "sleepy", [1])
    row = page.locator(f"tr[data-run='{run_id}']")
    row.locator("[data-status='running']").wait_for()
    row.locator("[data-status='completed']").wait_for()


def test_failing_run_shows_error_and_traceback(page: Any, server: LocalServer) -> None:
    run_id = start(server, "always_fails", [7])
    page.goto(f"{server.url}/#/runs/{run_id}")
    error = page.locator("#error")
    error.wait_for()
    assert "bad value 7" in error.inner_text()
    trace = page.locator("#traceback:has-text('explode')")  # the user's own frame
    trace.wait_for()
    assert "Traceback (most recent call last)" in trace.inner_text()


def test_tree_of_add_squares_shows_both_subtasks(page: Any, server: LocalServer) -> None:
    run_id = start(server, "add_squares", [3, 4])
    page.goto(f"{server.url}/#/runs/{run_id}")
    page.locator("#result:text('25')").wait_for()
    nodes = page.locator(f".tree li[data-run='{run_id}'] ul > li")
    nodes.nth(1).wait_for()
    assert nodes.count() == 2
    assert [t.strip().split()[0] for t in nodes.all_inner_texts()] == ["square", "square"]
    nodes.first.locator("a").first.click()
    page.locator("h2:has-text('square')").wait_for()


def test_cancel_from_the_ui_cancels_the_run_and_its_children(
    page: Any, server: LocalServer
) -> None:
    run_id = start(server, "parent_of_sleepers", [2])
    page.goto(f"{server.url}/#/runs/{run_id}")
    kids = page.locator(f".tree li[data-run='{run_id}'] ul > li [data-status='running']")
    kids.nth(1).wait_for()
    page.locator("#cancel").click()
    page.locator("h2 [data-status='canceled']").wait_for()
    children = httpx.get(f"{server.url}/v1/task-runs", params={"rootTaskRunId": run_id}).json()
    assert len(children) == 3
    assert {c["status"] for c in children} == {"canceled"}


def test_start_form_runs_a_task_and_rejects_bad_json(page: Any, server: LocalServer) -> None:
    page.goto(f"{server.url}/#/tasks")
    page.select_option("#start-task", "square")
    page.fill("#start-input", "[3,")
    page.click("#start-form button[type=submit]")
    assert "not valid JSON" in page.locator("#start-message").inner_text()
    page.fill("#start-input", "[6]")
    page.click("#start-form button[type=submit]")
    page.locator("#result:text('36')").wait_for()


def test_logs_stream(page: Any, server: LocalServer) -> None:
    run_id = start(server, "sleepy", [3])
    page.goto(f"{server.url}/#/runs/{run_id}")
    page.locator("#logs [data-stream='stdout']:text('tick 2')").wait_for()
    assert status(server, run_id) == "running"  # seen while the run was still going
    page.locator("#logs span:text-is('tick 29')").wait_for(state="attached")


def test_keyboard_reaches_every_control(page: Any, server: LocalServer) -> None:
    page.goto(f"{server.url}/#/tasks")
    page.locator("#start-form").wait_for()
    controls = page.eval_on_selector_all(
        "a[href], button, input, select, textarea",
        "els => els.filter(e => e.offsetParent !== null && !e.disabled).map(e => e.outerHTML)",
    )
    reached: set[str] = set()
    for _ in range(len(controls) + 5):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.outerHTML"))
    assert set(controls) <= reached


def test_banner_says_what_serves_after_a_failed_reload(
    browser: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "dashapp.py"
    good = textwrap.dedent(APP)
    source.write_text(good)
    with LocalServer(app="dashapp:app", cwd=tmp_path) as srv:
        source.write_text(good + "\n\ndef oops(:\n")  # a syntax error saved mid-session
        srv.wait_for_output(r"^Reload failed; serving the last good version", timeout=60)
        context = browser.new_context()
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        try:
            pg.goto(srv.url + "/#/tasks")
            banner = pg.locator("#registration-error")
            banner.wait_for()
            text = banner.inner_text()
            assert "Task registration failed: start command exited" in text
            assert " \u2014 Still serving the last good version (registered 20" in text
            assert "SyntaxError" in banner.locator("pre").inner_text()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()
