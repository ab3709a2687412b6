"""rec-web: dashboard, JSON API, health aggregate."""
