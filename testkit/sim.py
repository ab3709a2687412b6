"""The simulator's clock as tests and benchmarks start it."""

START_MS = 1_764_086_400_000  # 2025-11-25T16:00:00Z, 11am ET: an hourly event just opened
