"""``rec run <service>``: the systemd protocol, done once for every service.

Order of events, each visible in the journal and in STATUS=:
config (+ the credentials the service declares) -> logging -> watchdog and metrics tasks (both
from the event loop: a blocked loop stops them) -> a backoff wait
after failed runs in a row (app.runtime.restarts) -> startup phases (each with a deadline) ->
READY=1 -> run -> SIGTERM -> STOPPING=1 -> stop() within the stop timeout -> exit 0.

Exit codes: 0 clean stop, 1 failure (phase overrun, crash), 78 configuration error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

from app import config
from app.runtime import clock, crash, lockstep, logs, metrics, restarts
from app.runtime.notify import Notifier, watchdog, watchdog_interval
from app.runtime.service import Service

EXIT_OK = 0
EXIT_FAILURE = 1

log = logging.getLogger("app.runtime")


class StartupFailed(Exception):
    pass


class Runner:
    def __init__(self, service: Service, settings: config.Settings) -> None:
        self.service = service
        self.settings = settings
        self.notifier = Notifier()
        self.stop_requested = asyncio.Event()
        self.started_at = time.monotonic()

    async def _phase(self, name: str, work: Any, timeout: float | None = None) -> Any:
        limit = timeout if timeout is not None else self.settings.phase_timeout_sec
        self.notifier.status(f"starting: {name}")
        log.info("startup phase %r: begin (deadline %.1fs)", name, limit)
        t0 = time.monotonic()
        task = asyncio.ensure_future(work)
        stop_wait = asyncio.ensure_future(self.stop_requested.wait())
        try:
            done, _ = await asyncio.wait({task, stop_wait}, timeout=limit,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
        if task in done:
            result = task.result()  # raises the phase's own error
            log.info("startup phase %r: done in %.2fs", name, time.monotonic() - t0)
            return result
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)  # let it clean up, but never hang on it
        if self.stop_requested.is_set():
            raise StartupFailed(f"stopped during startup phase {name!r}")
        raise StartupFailed(
            f"startup phase {name!r} did not finish within {limit:.1f}s; giving up"
        )

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        dog = None
        interval = watchdog_interval()
        if interval:
            dog = asyncio.create_task(watchdog(self.notifier, interval), name="watchdog")
        writer = metrics.Writer(self.settings, self.service.name) \
            if self.settings.metrics_enabled else None
        written = asyncio.create_task(writer.loop(), name="metrics") if writer else None
        try:
            return await self._lifecycle()
        finally:
            if dog:
                dog.cancel()
            if written:
                written.cancel()
                writer.last()

    def _on_signal(self, sig: int) -> None:
        if not self.stop_requested.is_set():
            log.info("received %s: stopping", signal.Signals(sig).name)
        self.stop_requested.set()

    async def _backoff(self) -> bool:
        """Wait before starting again after failures in a row; False if told to stop."""
        failures = restarts.read(self.settings.state_dir, self.service.name)
        delay = failures.delay()
        if not delay:
            return True
        self.notifier.status(f"waiting {delay:.0f}s before starting: "
                             f"{failures.count} failed run(s) in a row")
        log.warning("%d failed run(s) in a row: waiting %.0fs before starting again",
                    failures.count, delay)
        try:
            await asyncio.wait_for(self.stop_requested.wait(), delay)
        except TimeoutError:
            return True
        return False

    async def _lifecycle(self) -> int:
        name = self.service.name
        log.info("rec-%s starting (account mode %s)", name, self.settings.account_mode.value)
        if not await self._backoff():
            self.notifier.stopping()
            return EXIT_OK
        try:
            await self.service.start(self._phase)
        except StartupFailed as exc:
            stopping = self.stop_requested.is_set()
            (log.info if stopping else log.error)("%s", exc)
            await self._stop()
            return EXIT_OK if stopping else EXIT_FAILURE
        except config.ConfigError as exc:
            log.error("config error: %s", exc)
            await self._stop()
            return config.EX_CONFIG
        except Exception as exc:
            log.error("startup failed: %s: %s", type(exc).__name__, exc, exc_info=True)
            await self._stop()
            return EXIT_FAILURE
        elapsed = time.monotonic() - self.started_at
        self.notifier.ready(f"ready in {elapsed:.2f}s")
        log.info("READY: rec-%s ready in %.2fs", name, elapsed)
        restarts.reset(self.settings.state_dir, name)

        work = asyncio.create_task(self.service.run(), name="run")
        stop_wait = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        code = EXIT_OK
        if work.done():
            if exc := work.exception():
                log.error("rec-%s failed: %s: %s", name, type(exc).__name__, exc,
                          exc_info=exc)
                code = EXIT_FAILURE
            else:
                # a long-running unit that ends by itself is a failure systemd should see
                log.error("rec-%s stopped working without being asked to", name)
                code = EXIT_FAILURE
        else:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
        if not await self._stop():
            code = EXIT_FAILURE
        return code

    async def _stop(self) -> bool:
        """Release the service's resources; False if that failed or overran the stop timeout."""
        self.notifier.stopping()
        try:
            await asyncio.wait_for(self.service.stop(), self.settings.stop_timeout_sec)
        except TimeoutError:
            log.error("stop did not finish within %.1fs", self.settings.stop_timeout_sec)
        except (Exception, asyncio.CancelledError) as exc:
            log.error("error while stopping: %s: %s", type(exc).__name__, exc)
        else:
            log.info("rec-%s stopped", self.service.name)
            return True
        return False


def missing_credentials(settings: config.Settings, needed: tuple[str, ...]) -> str | None:
    """A config error text for the first credential the service needs but does not have."""
    for key in needed:
        if getattr(settings, key, None) is None:
            return (f"credential {key}: missing; this service needs it as a file named {key} "
                    f"in $CREDENTIALS_DIRECTORY (LoadCredential=) or {settings.credentials_path}")
    return None


def run_service(name: str, cls: type[Service], credentials: tuple[str, ...] = (),
                public: bool = True) -> int:
    """Entry point of ``rec run``: run ``cls`` as rec-``name``; returns the exit code.

    ``credentials`` are the credential files the service declares it needs (its registry
    entry): a missing one is a configuration error (exit 78), never a prompt or a retry.
    """
    try:
        settings = config.load()
        if problem := missing_credentials(settings, credentials):
            raise config.ConfigError(problem)
        try:
            clock.follow(settings.clock_file)
            lockstep.enable(settings.clock_file, name)
        except OSError as exc:
            raise config.ConfigError(f"clock_file: {exc.strerror}: {settings.clock_file}") from exc
    except config.ConfigError as exc:
        logs.emergency(f"config error: {exc}", ident=f"rec-{name}", service=name)
        return config.EX_CONFIG
    logs.setup(settings.log_level, ident=f"rec-{name}", service=name)
    # a watchdog kill is SIGABRT: leave the stack of every thread for the journal first
    crash.enable(settings.state_dir, name, logs.journal_stream_is_ours())
    for note in config.unknown_environment(os.environ):
        log.warning("%s", note)
    service = cls.__new__(cls)  # named first: __init__ names its logger after the service
    service.name, service.public = name, public
    service.__init__(settings)
    runner = Runner(service, settings)
    return asyncio.run(runner.main())
