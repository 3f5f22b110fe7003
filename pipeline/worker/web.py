"""The worker's HTTP endpoint: Prometheus ``/metrics`` on loopback (port 0 = none)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


async def serve_metrics(port: int) -> web.AppRunner | None:
    """Start serving ``/metrics`` on 127.0.0.1:``port``; the runner to clean up, or None."""
    if not port:
        return None

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
