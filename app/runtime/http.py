"""An ASGI app served by uvicorn inside a rec service, with READY gated on the bound socket."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from app.runtime.service import Phase, Service

log = logging.getLogger(__name__)


class BindError(Exception):
    pass


class _Server(uvicorn.Server):
    # the runner owns signals; uvicorn must not install its own handlers
    def install_signal_handlers(self) -> None:  # pragma: no cover - older uvicorn
        pass


class HttpServer:
    """``await start()`` returns once the socket is bound and the app's lifespan ran."""

    def __init__(self, app, host: str, port: int, **options) -> None:
        self.config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False,
            lifespan="on", timeout_graceful_shutdown=5, **options,
        )
        self.server = _Server(self.config)
        self._main: asyncio.Task | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return self.server.servers[0].sockets[0].getsockname()[1]

    async def start(self) -> None:
        if not self.config.loaded:
            self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        try:
            await self.server.startup()
        except SystemExit:
            raise BindError(
                f"cannot serve on {self.config.host}:{self.config.port} (see the line above)"
            ) from None
        self._main = asyncio.create_task(self.server.main_loop(), name="http")

    async def wait(self) -> None:
        """Until the server stops; raises if it stopped by itself."""
        if self._main is not None:
            await asyncio.shield(self._main)

    async def stop(self) -> None:
        if not self.server.started:
            return
        self.server.should_exit = True
        if self._main is not None:
            await asyncio.gather(self._main, return_exceptions=True)
        await self.server.shutdown()


class HttpService(Service):
    """A service whose work is serving an ASGI app: bound in a startup phase (so READY means
    the port accepts connections), run until the server stops, stopped on SIGTERM."""

    http: HttpServer | None = None

    async def serve_http(self, phase: Phase, app, port: int, what: str = "http",
                         **options) -> None:
        """Bind REC_BIND_HOST if the service is public (its port is reached from other
        hosts), else REC_TARGET_HOST, where rec's own services reach each other."""
        host = self.settings.bind_host if self.public else self.settings.target_host
        self.http = HttpServer(app, host, port, **options)
        await phase(f"bind {what} {host}:{port}", self.http.start())

    async def run(self) -> None:
        assert self.http is not None, "serve_http() was not called in start()"
        await self.http.wait()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.stop()
