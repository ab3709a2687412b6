"""PostgreSQL access: connection info, the async pool, migrations, backup/restore."""

from app.db.pool import conninfo, open_pool

__all__ = ["conninfo", "open_pool"]
