"""rec: a Kalshi trading system shipped as a bundle of systemd services."""

__version__ = "0.1.0"
