"""Prometheus metrics of a rec process: the one registry, every metric rec defines, the writer.

No service opens a metrics port (the units keep ``IPAddressDeny=any`` and a low exposure):
each writes its registry to ``<metrics_dir>/rec_<service>.prom`` (prometheus_client's
``write_to_textfile``: a temporary file renamed into place) every ``metrics_interval_sec``
from its event loop, so a blocked loop stops the writes as it stops the watchdog pings,
and once more on stop with ``rec_up`` 0. The node exporter's textfile collector reads the
directory; ``rec metrics`` and rec-web's ``/metrics/<service>`` show the same files.

Every sample carries the constant label ``service`` (the file name gives the node exporter
none). The metrics are defined here, unregistered: a process registers the groups it feeds
(:func:`use`), so a service's file holds only what that service measures (no zero
``rec_ledger_last_check_timestamp_seconds`` from a feed that never checks the ledger). The
numbers are set where they are born, one line at the call site; the list with each meaning is
docs/bundle.md, "Metrics".
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    write_to_textfile,
)
from prometheus_client.metrics import MetricWrapperBase

from app.runtime import restarts

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)
disable_created_metrics()  # no *_created series: the start time is rec_start_time_seconds

FILE_MODE = 0o644  # the node exporter reads every unit's file (UMask=0027 would give 0640)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format the files hold
BACKUP = "backup"  # the file of the backup job (app/db/backup_job.py), not a service
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceRegistry(CollectorRegistry):
    """A registry whose every sample is labelled ``service=<name>``."""

    service = ""

    def collect(self) -> Iterable:
        for family in super().collect():
            family.samples = [s._replace(labels={**s.labels, "service": self.service})
                              for s in family.samples]
            yield family


REGISTRY = ServiceRegistry(auto_describe=True)

# ---- every process ------------------------------------------------------------------------
UP = Gauge("rec_up", "1 while the service runs; 0 in the file it leaves on stop",
           registry=None)
START_TIME = Gauge("rec_start_time_seconds", "when this process started (epoch seconds)",
                   registry=None)
RESTARTS = Counter("rec_restarts", "failed runs of this unit counted by `rec unit-failed` "
                   "(exit codes, crashes, watchdog kills), since the host was set up",
                   registry=None)
LAST_WRITE = Gauge("rec_last_write_timestamp_seconds", "when this file was written "
                   "(epoch seconds)", registry=None)
PROCESS = (UP, START_TIME, RESTARTS, LAST_WRITE)

# ---- data in ------------------------------------------------------------------------------
RECEIVED = Counter("rec_messages_received", "messages received from the exchange",
                   ["feed"], registry=None)
STORED = Counter("rec_messages_stored", "rows committed to PostgreSQL", ["feed"],
                 registry=None)
QUEUE_DEPTH = Gauge("rec_queue_depth", "items waiting in the queue", ["queue"], registry=None)
QUEUE_AGE = Gauge("rec_queue_age_seconds", "age of the oldest item waiting in the queue",
                  ["queue"], registry=None)
FEED_STALENESS = Gauge("rec_feed_staleness_seconds", "seconds since the feed's last message",
                       ["feed"], registry=None)
INDEX_STALENESS = Gauge("rec_index_staleness_seconds", "seconds since the index's last value "
                        "(since the service started when none came yet)", ["index"],
                        registry=None)
DATA_IN = (RECEIVED, STORED, QUEUE_DEPTH, QUEUE_AGE, FEED_STALENESS, INDEX_STALENESS)

# ---- trading ------------------------------------------------------------------------------
INTENTS = Counter("rec_intents", "trade intents rec-trade-manager was given", ["kind"],
                  registry=None)
ORDERS_SENT = Counter("rec_orders_sent", "order requests sent to the exchange", registry=None)
ORDERS_ACCEPTED = Counter("rec_orders_accepted", "orders the exchange accepted (including "
                          "those found by client_order_id after a lost answer)", registry=None)
ORDERS_REJECTED = Counter("rec_orders_rejected", "orders the exchange refused, by its error "
                          "code", ["reason"], registry=None)
IN_DOUBT = Gauge("rec_orders_in_doubt", "legs whose outcome at the exchange is unknown",
                 registry=None)
IN_DOUBT_AGE = Gauge("rec_orders_in_doubt_oldest_age_seconds", "age of the oldest leg in "
                     "doubt (0: none)", registry=None)
ROUND_TRIP = Histogram("rec_order_round_trip_seconds", "an order's request to the "
                       "exchange's answer", buckets=SECONDS, registry=None)
ORDERS = (ORDERS_SENT, ORDERS_ACCEPTED, ORDERS_REJECTED, IN_DOUBT, IN_DOUBT_AGE, ROUND_TRIP)
TRADES = (INTENTS,)

# ---- reconciliation -----------------------------------------------------------------------
LEDGER_DIFFERENCES = Gauge("rec_ledger_differences", "differences the last comparison of the "
                           "books with the exchange found (0: they agree)", registry=None)
LEDGER_CHECKED = Gauge("rec_ledger_last_check_timestamp_seconds", "when the books were last "
                       "compared with the exchange (epoch seconds)", registry=None)
LEDGER = (LEDGER_DIFFERENCES, LEDGER_CHECKED)

# ---- database -----------------------------------------------------------------------------
POOL_WAIT = Histogram("rec_db_pool_wait_seconds", "wait for a connection from the pool",
                      buckets=SECONDS, registry=None)
POOL_SIZE = Gauge("rec_db_pool_size", "connections the pool holds (in use or not)",
                  registry=None)
POOL_AVAILABLE = Gauge("rec_db_pool_available", "connections idle in the pool", registry=None)
DATABASE = (POOL_WAIT, POOL_SIZE, POOL_AVAILABLE)


_used: set[MetricWrapperBase] = set()


def use(*groups: tuple[MetricWrapperBase, ...]) -> None:
    """Register the metrics of ``groups`` with this process's registry (once each)."""
    for metric in (m for group in groups for m in group if m not in _used):
        REGISTRY.register(metric)
        _used.add(metric)


def gauge_from(gauge: Gauge, read: Callable[[], float], **labels: str) -> None:
    """``gauge`` (its ``labels`` child) reads ``read()`` each time the file is written."""
    (gauge.labels(**labels) if labels else gauge).set_function(read)


def queue_from(queue: str, lag: Callable[[], tuple[int, float]]) -> None:
    """``rec_queue_depth`` and ``rec_queue_age_seconds`` of ``queue`` from ``lag()``
    (items waiting, seconds the oldest has waited), read when the file is written."""
    gauge_from(QUEUE_DEPTH, lambda: lag()[0], queue=queue)
    gauge_from(QUEUE_AGE, lambda: lag()[1], queue=queue)


def since(clock: Callable[[], float], last: Callable[[], float | None]) -> Callable[[], float]:
    """Seconds from ``last()`` to ``clock()`` now (0 when ``last()`` is None)."""
    def read() -> float:
        at = last()
        return 0.0 if at is None else max(0.0, clock() - at)
    return read


# ---- files --------------------------------------------------------------------------------

def directory(settings: Settings) -> Path:
    return settings.metrics_dir


def path(settings: Settings, name: str) -> Path:
    return directory(settings) / f"rec_{name}.prom"


def read(settings: Settings, name: str) -> str | None:
    """The file ``name`` (a service or ``backup``) last wrote; None when there is none."""
    try:
        return path(settings, name).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def names(settings: Settings) -> list[str]:
    """The names of the metric files there are, sorted."""
    try:
        found = directory(settings).glob("rec_*.prom")
        return sorted(p.name.removeprefix("rec_").removesuffix(".prom") for p in found)
    except OSError:
        return []


def write_file(target: Path, registry: CollectorRegistry) -> None:
    """``registry`` into ``target``, atomically, readable by the node exporter."""
    write_to_textfile(str(target), registry)
    os.chmod(target, FILE_MODE)


class Writer:
    """The process's metrics file, rewritten every ``metrics_interval_sec`` from the loop."""

    def __init__(self, settings: Settings, service: str) -> None:
        self.target = path(settings, service)
        self.interval = settings.metrics_interval_sec
        self.failed = True  # the directory is made on the first write and after a failure
        self.said = False  # a failure is said once in the journal
        REGISTRY.service = service
        use(PROCESS)
        UP.set(1)
        START_TIME.set(time.time())
        RESTARTS.inc(restarts.total(settings.state_dir, service))

    def write(self) -> None:
        LAST_WRITE.set(time.time())
        try:
            if self.failed:  # not on every write: the directory stays once made
                self.target.parent.mkdir(exist_ok=True)
            write_file(self.target, REGISTRY)
        except OSError as exc:
            if not self.said:
                log.warning("metrics: cannot write %s: %s", self.target, exc)
            self.failed = self.said = True
        else:
            if self.said:
                log.info("metrics: %s written again", self.target)
            self.failed = self.said = False

    async def loop(self) -> None:
        while True:
            self.write()
            await asyncio.sleep(self.interval)

    def last(self) -> None:
        """The file the stopped service leaves: ``rec_up`` 0."""
        UP.set(0)
        self.write()
