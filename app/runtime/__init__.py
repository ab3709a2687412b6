"""The service runtime every rec unit runs on: config, journald logging, sd_notify, watchdog,
startup phases with deadlines, signal handling and exit codes."""

from app.runtime.service import Phase, Service

__all__ = ["Phase", "Service"]
