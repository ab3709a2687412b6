"""Trading without HTTP: the intent's schema (``intents``), the trading settings' ranges
(``settings_ranges``), the SQL of the trade manager (``statements``) and the trade state machine
(``machine``). The services in ``app/services/trade_*.py`` put HTTP and loops around them."""
