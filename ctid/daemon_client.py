"""Requests to the running daemon's HTTP API, for the commands that talk to it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from ctid.config import load_settings
from ctid.errors import CtidError

TIMEOUT_SECONDS = 10.0


def call_daemon(
    config: Path | None,
    url: str | None,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
    data: bytes | None = None,
    content_type: str = "text/csv; charset=utf-8",
    seconds: float = TIMEOUT_SECONDS,
) -> Any:
    """The JSON answer of ``method path``; URL and token from ``[http]`` unless ``url`` is given.

    ``body`` is sent as JSON; ``data`` (instead) as it is, with ``content_type``; ``seconds``
    is how long to wait for the answer.

    Every failure (unreachable, refused, timed out) is one :class:`CtidError` line.
    """
    settings = load_settings(config)
    http = settings.http
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    base = (url or f"http://{host}:{http.port}").rstrip("/")
    token = http.resolved_api_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if data is not None:
        headers["Content-Type"] = content_type
    return asyncio.run(_request(method, base + path, headers, body, query, data, seconds))


async def _request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None,
    query: dict[str, str] | None,
    data: bytes | None = None,
    seconds: float = TIMEOUT_SECONDS,
) -> Any:
    limit = aiohttp.ClientTimeout(total=seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=limit) as session,
            session.request(
                method, url, json=body, data=data, params=query, headers=headers
            ) as response,
        ):
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
            if response.status >= 400:
                error = answer.get("error") if isinstance(answer, dict) else response.reason
                raise CtidError(f"daemon refused ({response.status}): {error}")
            return answer
    except aiohttp.ClientConnectionError as err:
        raise CtidError(
            f"cannot reach the daemon at {url} ({err}); is 'ctid run' running?"
        ) from err
    except TimeoutError as err:
        raise CtidError(f"no answer from the daemon at {url} within {seconds:g} s") from err
