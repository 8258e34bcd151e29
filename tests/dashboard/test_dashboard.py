"""The dashboard end to end: a real server, a real app, headless Chromium."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import APP, ARTIFACTS

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
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    run_id = start(server, "sleepy", [5])
    page.goto(f"{server.url}/#/runs/{run_id}")
    page.locator("#logs [data-stream='stdout']:text('tick 1')").wait_for()
    assert status(server, run_id) == "running"  # seen while the run was still going
    page.locator("#logs span:text-is('tick 49')").wait_for(state="attached")
    lines = page.locator("#logs span").all_inner_texts()
    assert [x.strip() for x in lines] == [f"tick {i}" for i in range(50)]
    # One stream, no polling of the logs API.
    assert [u for u in requests if "/v1/logs" in u] == []
    assert len([u for u in requests if "/v1/dashboard/logs" in u]) == 1


def test_tasks_view_shows_every_parameter(page: Any, server: LocalServer) -> None:
    page.goto(f"{server.url}/#/tasks")
    greet = page.locator("tr[data-task='greet'] .params code")
    greet.first.wait_for()
    assert greet.all_inner_texts() == [
        "name: str",
        'punctuation: str = "!"',
        "*rest: str",
        "times: int = 1",
        "**extra: object",
    ]
    assert page.locator("tr[data-task='square'] .params code").all_inner_texts() == ["a: int"]
    two = page.locator("tr[data-task='add_squares'] .params code").all_inner_texts()
    assert two == ["a: int", "b: int"]


@pytest.mark.parametrize(
    ("task", "input", "message"),
    [
        ("square", "[1, 2]", "square(a) takes at most 1 positional argument, the input has 2."),
        ("square", "[]", "square(a): missing required argument a."),
        ("square", '{"b": 1}', "square(a): unknown parameter b."),
        ("add_squares", '{"a": 1}', "add_squares(a, b): missing required parameter b."),
        ("greet", "[]", "missing required argument name"),
        ("square", "5", "Input must be a JSON array"),
    ],
)
def test_start_form_checks_the_input_against_the_parameters(
    page: Any, server: LocalServer, task: str, input: str, message: str
) -> None:
    created: list[str] = []
    page.on("request", lambda r: created.append(r.url) if r.method == "POST" else None)
    page.goto(f"{server.url}/#/tasks")
    page.select_option("#start-task", task)
    page.fill("#start-input", input)
    page.click("#start-form button[type=submit]")
    page.locator(f"#start-message:has-text({message!r})").wait_for()
    assert created == []  # nothing was started


def test_start_form_accepts_keyword_and_variadic_input(page: Any, server: LocalServer) -> None:
    page.goto(f"{server.url}/#/tasks")
    page.select_option("#start-task", "greet")
    page.fill("#start-input", '{"name": "hi", "times": 2, "anything": 1}')
    page.click("#start-form button[type=submit]")
    page.locator("#result:text('hi!hi!')").wait_for()


def test_runs_filters_are_sent_to_the_server(page: Any, server: LocalServer) -> None:
    failed = start(server, "always_fails", [3])
    queries: list[str] = []
    page.on("request", lambda r: queries.append(r.url) if "/v1/dashboard/runs" in r.url else None)
    page.goto(server.url + "/")
    page.locator("tr[data-run]").first.wait_for()
    page.select_option("#f-status", "failed")
    page.locator(f"tr[data-run='{failed}']").wait_for()
    rows = page.locator("tbody tr[data-run] [data-status]")
    assert set(rows.all_inner_texts()) == {"failed"}
    assert "status=failed" in queries[-1]
    page.check("#f-roots")
    page.locator(f"tr[data-run='{failed}']").wait_for()
    assert "rootsOnly=true" in queries[-1]
    page.fill("#f-search", failed)
    page.press("#f-search", "Enter")
    page.locator("tbody tr[data-run]").first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('tbody tr[data-run]').length === 1")
    page.fill("#f-search", "trn-not-a-run")
    page.press("#f-search", "Enter")
    page.locator("td:text('No runs match.')").wait_for()


# ------------------------------------------------------------------ keyboard

_FOCUSABLE = "a[href], button, input, select, textarea"
_KEY = "e => `${e.tagName}#${e.id}|${e.getAttribute('href') || ''}|${e.textContent.trim()}`"


def assert_tab_reaches_every_control(page: Any) -> None:
    controls = page.eval_on_selector_all(
        _FOCUSABLE,
        f"els => els.filter(e => e.offsetParent !== null && !e.disabled).map({_KEY})",
    )
    assert controls
    reached: set[str] = set()
    # Twice round: Tab starts wherever focus was and wraps at the end of the page.
    for _ in range(2 * len(controls) + 10):
        page.keyboard.press("Tab")
        reached.add(page.evaluate(f"({_KEY})(document.activeElement)"))
    assert set(controls) <= reached, set(controls) - reached


def wait_until_idle(server: LocalServer) -> None:
    """No run left that could redraw the page (and move focus) while it is tabbed through."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000 * 3
    params = {"status": "pending,running", "limit": 1}
    while httpx.get(f"{server.url}/v1/task-runs", params=params).json():
        assert time.monotonic() < deadline, "runs still going"
        time.sleep(0.1)


def test_keyboard_reaches_and_activates_every_control(page: Any, server: LocalServer) -> None:
    # Runs view: filters, pager, run links; Space toggles, Enter follows.
    wait_until_idle(server)
    page.goto(server.url + "/")
    page.locator("tr[data-run]").first.wait_for()
    assert_tab_reaches_every_control(page)
    page.focus("#f-roots")
    page.keyboard.press("Space")
    assert page.is_checked("#f-roots")
    page.focus("#f-roots")
    page.keyboard.press("Space")
    assert not page.is_checked("#f-roots")

    # Run view: cancel, run again, the tree's links.
    run_id = start(server, "parent_of_sleepers", [1])
    page.goto(f"{server.url}/#/runs/{run_id}")
    child = page.locator(f".tree li[data-run='{run_id}'] ul > li")
    child.locator("[data-status='running']").wait_for()
    page.locator("#cancel:not([disabled])").wait_for()
    assert_tab_reaches_every_control(page)
    child_id = child.get_attribute("data-run")
    child.locator("a").first.focus()
    page.keyboard.press("Enter")
    page.locator(f"p:has-text('Run {child_id}')").wait_for()
    page.go_back()
    page.locator("#cancel:not([disabled])").wait_for()
    page.focus("#cancel")
    page.keyboard.press("Enter")
    page.locator("h2 [data-status='canceled']").wait_for()
    page.focus("#run-again")
    page.keyboard.press("Space")
    page.locator("#start-form").wait_for()
    assert page.input_value("#start-task") == "parent_of_sleepers"
    assert page.input_value("#start-input") == "[1]"

    # Tasks view: the form's controls; Enter on the button starts the run.
    assert_tab_reaches_every_control(page)
    page.select_option("#start-task", "square")
    page.fill("#start-input", "[9]")
    page.focus("#start-form button[type=submit]")
    page.keyboard.press("Enter")
    page.locator("#result:text('81')").wait_for()


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
