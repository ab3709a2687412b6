"""The simulator's exchange errors: an HTTP status with Kalshi's error code and message."""

from __future__ import annotations


class ExchangeError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
