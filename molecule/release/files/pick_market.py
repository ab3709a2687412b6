"""The market the release scenario trades in, by the simulator's own schedule (its REST API, no
wall-clock minute): an open market of SERIES that closes more than MARGIN seconds from now,
the one closing first. Just before the hour no open market does (the simulator opens each
hourly event at the hour before its close): then it waits for the next market's open_time and
asks again. Prints the ticker; exits 1 naming what it found when nothing is scheduled.

    pick_market.py BASE_URL MARGIN_SEC SERIES      (BASE_URL: http://127.0.0.1:<port>/trade-api/v2)

Stdlib only: it runs on the guest's /usr/bin/python3."""

import json
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime

MAX_WAIT_SEC = 3600  # the simulator opens an event every hour


def markets(base: str, **query: object) -> list[dict]:
    out: list[dict] = []
    cursor = ""
    while True:
        page = {**query, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        q = urllib.parse.urlencode(page)
        with urllib.request.urlopen(f"{base}/markets?{q}", timeout=10) as r:
            body = json.load(r)
        out += body["markets"]
        cursor = body.get("cursor") or ""
        if not cursor:
            return out


def unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def choose(base: str, series: str, now: float, margin: float) -> tuple[str | None, float | None]:
    """(ticker, None): the open market closing first (then by ticker) after ``now + margin``;
    (None, t): none does and the next of the series opens at ``t``; (None, None): none is
    scheduled either."""
    open_ = markets(base, series_ticker=series, status="open", min_close_ts=int(now + margin))
    if open_:
        return min(open_, key=lambda m: (unix(m["close_time"]), m["ticker"]))["ticker"], None
    opens = [unix(m["open_time"]) for m in markets(base, series_ticker=series, status="unopened")]
    return None, min(opens, default=None)


def main(base: str, margin: float, series: str) -> int:
    deadline = time.time() + MAX_WAIT_SEC
    while time.time() < deadline:
        ticker, opens = choose(base, series, time.time(), margin)
        if ticker:
            print(ticker)
            return 0
        if opens is None:
            print(f"no open {series} market closes after {margin:.0f} s and none is scheduled",
                  file=sys.stderr)
            return 1
        wait = max(opens - time.time(), 0) + 1
        print(f"none closes after {margin:.0f} s: waiting {wait:.0f} s for the next to open",
              file=sys.stderr)
        time.sleep(min(wait, deadline - time.time()))
    print(f"no {series} market to trade within {MAX_WAIT_SEC} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), sys.argv[3]))
