"""Real components for tests and benchmarks, on loopback: a PostgreSQL server of the test's own
(`pg`), a NOTIFY_SOCKET that records sd_notify messages (`notify`), free ports (`net`).

Imported by `tests/` and `benchmarks/` alike; never shipped in the rec package.
"""
