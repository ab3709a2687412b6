"""rec-web's routes, one router per area: health (public), login, live (SSE), pages (HTML,
manual trading included) and the JSON API."""
