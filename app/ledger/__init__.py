"""The books against the exchange: rec's trades, legs and account mirror compared with the
exchange's own record (orders, fills, positions, settlements, balance).

    record = await records.read_exchange(rest)     # the exchange's record (app.exchange_client)
    books = await records.read_books(conn)         # rec's books (PostgreSQL)
    result = compare.compare(books, record)        # counts, figures, differences
    print(report.side_by_side(result)); report.to_json(result)

``rec ledger check`` (app/ledger/cli.py) runs the three and exits non-zero on a difference.
"""
