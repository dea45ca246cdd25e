"""HTTP endpoints: ``/metrics`` (Prometheus) and ``/healthz`` (JSON, 503 while a PBX is down)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ctid.errors import ConfigError

HealthReport = Callable[[], tuple[bool, dict[str, Any]]]
Render = Callable[[str], Awaitable[tuple[bytes, str]]]
"""``Accept`` header → (body, content type):
:meth:`ctid.metrics.exposition.Exposition.render_async`."""


def build_app(
    registry: CollectorRegistry, health: HealthReport, render: Render | None = None
) -> web.Application:
    """``render`` serves /metrics when given (the fast per-seat exposition); otherwise the
    registry is rendered by prometheus_client."""

    async def stock(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    render_metrics = render or stock

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = await render_metrics(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        healthy, report = health()
        return web.Response(
            text=json.dumps(report, ensure_ascii=False),
            status=200 if healthy else 503,
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


@contextlib.asynccontextmanager
async def serve_http(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` until the context exits; yields the bound port (``port=0`` picks one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise ConfigError(f"http: cannot listen on {host}:{port} ({err.strerror})") from err
    try:
        addresses = runner.addresses
        yield int(addresses[0][1]) if addresses else port
    finally:
        await runner.cleanup()
