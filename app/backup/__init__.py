"""Backups seen from the app: `rec backup run|drill|runs` and the restore drill, which checks a
restored backup's books against the live ones (the dump itself: app/db/backup_job.py)."""
