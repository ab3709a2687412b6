"""Kalshi Trade API v2 client: signing, REST, WebSocket, typed models."""
