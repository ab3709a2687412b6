"""Recordings: a window of what rec stored (market history, index values, market
lifecycle) as one portable Parquet file (`rec record export|info|import`). The file's
layout: :mod:`app.record.schema`; docs/record.md."""
