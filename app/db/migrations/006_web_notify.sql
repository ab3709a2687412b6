-- rec-web: live updates of the account tables (rec-account-sync writes them without a
-- NOTIFY of its own). One notification per statement on channel rec_account, the payload
-- being the table's name; the dashboard then re-reads what it shows from that table.

CREATE FUNCTION rec_account_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rec_account', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER account_balance_notify AFTER INSERT OR UPDATE OR DELETE ON account_balance
    FOR EACH STATEMENT EXECUTE FUNCTION rec_account_notify();
CREATE TRIGGER account_positions_notify AFTER INSERT OR UPDATE OR DELETE ON account_positions
    FOR EACH STATEMENT EXECUTE FUNCTION rec_account_notify();
CREATE TRIGGER account_fills_notify AFTER INSERT OR UPDATE OR DELETE ON account_fills
    FOR EACH STATEMENT EXECUTE FUNCTION rec_account_notify();
CREATE TRIGGER account_orders_notify AFTER INSERT OR UPDATE OR DELETE ON account_orders
    FOR EACH STATEMENT EXECUTE FUNCTION rec_account_notify();
CREATE TRIGGER account_settlements_notify AFTER INSERT OR UPDATE OR DELETE ON account_settlements
    FOR EACH STATEMENT EXECUTE FUNCTION rec_account_notify();

-- trades (rec-trade-manager writes them): channel trades, payload the trade's id (the
-- channel trade_common.CH_TRADES names; identical notifications in one transaction are
-- delivered once). Trading settings: channel trading_settings, payload the key.
CREATE FUNCTION rec_trade_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('trades', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER trades_notify AFTER INSERT OR UPDATE ON trades
    FOR EACH ROW EXECUTE FUNCTION rec_trade_notify();

CREATE FUNCTION rec_trading_settings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('trading_settings', NEW.key);
    RETURN NULL;
END $$;
CREATE TRIGGER trading_settings_notify AFTER INSERT OR UPDATE ON trading_settings
    FOR EACH ROW EXECUTE FUNCTION rec_trading_settings_notify();
