"""The client core without I/O: configuration, error mapping, transport errors, backoff."""

from __future__ import annotations

import email.utils
import platform
import re

import httpx
import pytest

from render_sdk import Render, RenderSync, __version__
from render_sdk.client._core import (
    error_from_response,
    map_transport_errors,
    parse_retry_after,
    resolve_config,
    retry_delay,
    user_agent,
)
from render_sdk.client.errors import (
    ClientError,
    ConfigurationError,
    RateLimitError,
    RenderError,
    ServerError,
    TimeoutError,
)

# --------------------------------------------------------------------------- configuration


def test_token_from_env_and_default_base() -> None:
    config = resolve_config(environ={"RENDER_API_KEY": "rnd_key"})
    assert config.api_base == "https://api.render.com/v1"
    assert config.token == "rnd_key"
    assert config.headers["Authorization"] == "Bearer rnd_key"
    assert not config.local


def test_explicit_token_wins_over_env() -> None:
    config = resolve_config(token="explicit", environ={"RENDER_API_KEY": "env"})
    assert config.headers["Authorization"] == "Bearer explicit"


@pytest.mark.parametrize("env", [{}, {"RENDER_API_KEY": ""}, {"RENDER_API_KEY": "  "}])
def test_token_required_against_render(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="RENDER_API_KEY") as info:
        resolve_config(environ=env)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RenderError)


@pytest.mark.parametrize("value", ["1", "t", "T", "true", "TRUE", "True"])
def test_use_local_dev_truthy_values(value: str) -> None:
    config = resolve_config(environ={"RENDER_USE_LOCAL_DEV": value})
    assert config.api_base == "http://localhost:8120/v1"
    assert config.local
    assert config.token is None
    assert "Authorization" not in config.headers


@pytest.mark.parametrize("value", ["0", "false", "yes", "on", ""])
def test_use_local_dev_other_values_are_not_local(value: str) -> None:
    with pytest.raises(ConfigurationError):
        resolve_config(environ={"RENDER_USE_LOCAL_DEV": value})


def test_local_dev_url_wins_over_use_local_dev() -> None:
    config = resolve_config(
        environ={"RENDER_LOCAL_DEV_URL": "http://127.0.0.1:9999/", "RENDER_USE_LOCAL_DEV": "1"}
    )
    assert config.api_base == "http://127.0.0.1:9999/v1"
    assert "Authorization" not in config.headers


def test_local_mode_sends_token_when_given() -> None:
    config = resolve_config(environ={"RENDER_USE_LOCAL_DEV": "1", "RENDER_API_KEY": "k"})
    assert config.headers["Authorization"] == "Bearer k"


def test_explicit_base_url_wins_and_is_normalized() -> None:
    env = {"RENDER_LOCAL_DEV_URL": "http://localhost:1", "RENDER_API_KEY": "k"}
    assert resolve_config(base_url="api.example.com/", environ=env).api_base == (
        "https://api.example.com/v1"
    )
    assert resolve_config(base_url="https://x.test/v1/", environ=env).api_base == (
        "https://x.test/v1"
    )


def test_loopback_base_url_needs_no_token() -> None:
    config = resolve_config(base_url="http://127.0.0.1:8120", environ={})
    assert config.local
    assert config.token is None


def test_owner_and_region_defaults() -> None:
    env = {"RENDER_API_KEY": "k", "RENDER_WORKSPACE_ID": "tea-1", "RENDER_REGION": "oregon"}
    config = resolve_config(environ=env)
    assert (config.owner_id, config.region) == ("tea-1", "oregon")
    config = resolve_config(owner_id="tea-2", region="frankfurt", environ=env)
    assert (config.owner_id, config.region) == ("tea-2", "frankfurt")
    config = resolve_config(
        environ={"RENDER_API_KEY": "k", "RENDER_WORKSPACE_ID": "", "RENDER_REGION": ""}
    )
    assert (config.owner_id, config.region) == (None, None)


def test_negative_max_retries_rejected() -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        resolve_config(token="k", max_retries=-1)


def test_user_agent_format() -> None:
    ua = user_agent()
    assert ua.startswith(f"render-sdk-python/{__version__} (")
    impl = platform.python_implementation().lower()
    assert re.fullmatch(
        rf"render-sdk-python/{re.escape(__version__)} \({impl}/[\d.]+\w*; [\w.-]+/[\w.-]+\)", ua
    )


def test_clients_read_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDER_USE_LOCAL_DEV", "true")
    assert Render().config.api_base == "http://localhost:8120/v1"
    assert RenderSync().config.api_base == "http://localhost:8120/v1"
    monkeypatch.delenv("RENDER_USE_LOCAL_DEV")
    with pytest.raises(ConfigurationError):
        Render()


# --------------------------------------------------------------------------- error mapping


def _response(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ClientError),
        (401, ClientError),
        (403, ClientError),
        (404, ClientError),
        (409, ClientError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
    ],
)
def test_status_maps_to_error_class(status: int, cls: type[RenderError]) -> None:
    body = b'{"id": "err-7", "message": "nope", "code": "too_many_resources"}'
    error = error_from_response(_response(status, body), "get task run")
    assert type(error) is cls
    assert error.status_code == status
    assert error.error_id == "err-7"
    assert error.code == "too_many_resources"
    assert str(error) == f"get task run failed with status {status}: nope (ID: err-7)"


def test_429_is_rate_limit_with_retry_after_seconds() -> None:
    error = error_from_response(
        _response(429, b'{"message": "slow down"}', **{"Retry-After": "7"}), "list task runs"
    )
    assert isinstance(error, RateLimitError)
    assert isinstance(error, ClientError)
    assert error.retry_after == 7.0
    assert "slow down" in str(error)


def test_retry_after_http_date() -> None:
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)
    assert parse_retry_after("not a date") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0


def test_non_json_body_is_quoted_bounded() -> None:
    error = error_from_response(_response(401, b"Unauthorized\n"), "run task")
    assert isinstance(error, ClientError)
    assert str(error) == (
        "run task failed with status 401: server returned a non-JSON response: Unauthorized"
    )
    big = b"<html>" + b"x" * 10_000
    text = str(error_from_response(_response(502, big), "run task"))
    assert "non-JSON" in text
    assert "<html>" in text
    assert len(text) < 700


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"message": 42}', b'"just a string"', b"{bad json"])
def test_malformed_error_bodies_still_map(body: bytes) -> None:
    error = error_from_response(_response(500, body), "get task run")
    assert isinstance(error, ServerError)
    assert error.status_code == 500
    assert str(error).startswith("get task run failed with status 500: server returned")


def test_empty_body_uses_reason_phrase() -> None:
    error = error_from_response(_response(503), "cancel task run")
    assert str(error) == "cancel task run failed with status 503: Service Unavailable"


def test_alternative_error_key() -> None:
    error = error_from_response(_response(400, b'{"error": "bad input"}'), "run task")
    assert "bad input" in str(error)


# --------------------------------------------------------------------------- transport errors


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), ServerError),
        (httpx.ReadError("reset"), ServerError),
        (httpx.RemoteProtocolError("peer closed"), ServerError),
        (httpx.ConnectTimeout("slow"), TimeoutError),
        (httpx.ReadTimeout("slow"), TimeoutError),
        (httpx.PoolTimeout("busy"), TimeoutError),
    ],
)
def test_transport_errors_translated_with_cause(exc: Exception, cls: type[RenderError]) -> None:
    with pytest.raises(cls) as info, map_transport_errors("get task run"):
        raise exc
    assert info.value.__cause__ is exc
    assert str(info.value).startswith("get task run")


# --------------------------------------------------------------------------- backoff


def test_retry_delay_backoff_and_jitter() -> None:
    assert retry_delay(0, rand=lambda: 0.0) == 0.5
    assert retry_delay(1, rand=lambda: 0.0) == 1.0
    assert retry_delay(2, rand=lambda: 1.0) == pytest.approx(2.0 * 0.75)
    assert retry_delay(10, rand=lambda: 0.0) == 8.0
    delays = {retry_delay(3) for _ in range(50)}
    assert len(delays) > 1
    assert all(3.0 <= d <= 4.0 for d in delays)


def test_retry_delay_honours_retry_after() -> None:
    assert retry_delay(0, retry_after=3.0) == 3.0
    assert retry_delay(5, retry_after=0.0) == 0.0
    # An unreasonable hint is ignored in favour of the backoff.
    assert retry_delay(0, retry_after=3600, rand=lambda: 0.0) == 0.5


def test_sync_pool_reuse_after_close_keeps_one_finalizer() -> None:
    from render_sdk.client._core import SyncHTTP

    http = SyncHTTP(resolve_config(base_url="http://127.0.0.1:8120", environ={}))
    previous = []
    for _ in range(3):
        pool = http.client()
        finalizer = http._finalizer
        assert finalizer is not None
        assert finalizer.alive
        assert all(not f.alive for f in previous)  # closed pools are not kept alive
        previous.append(finalizer)
        http.close()
        assert pool.is_closed
        assert not finalizer.alive
