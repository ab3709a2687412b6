"""What a market's ``rules_primary`` says about its settlement: the averaging window and the
index. Kalshi's crypto hourlies read "If the simple average of the sixty seconds of CF
Benchmarks' Bitcoin Real-Time Index (BRTI) before 5 PM EDT is above $X, ..."."""

from __future__ import annotations

import re
from dataclasses import dataclass

WORDS = {"ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45, "sixty": 60,
         "ninety": 90, "one hundred twenty": 120}
_WINDOW = re.compile(r"average of the ([a-z0-9 -]+?) seconds", re.IGNORECASE)
_INDEX = re.compile(r"\(([A-Z0-9_]+)\)")


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Rules:
    window_sec: int
    index_id: str | None


def parse(text: str) -> Rules:
    """The window (seconds) and index a rules text names; RulesError when it names none."""
    m = _WINDOW.search(text or "")
    if m is None:
        raise RulesError(f"rules_primary names no averaging window: {text[:160]!r}")
    word = m.group(1).strip().lower()
    window = int(word) if word.isdigit() else WORDS.get(word)
    if not window:
        raise RulesError(f"rules_primary: cannot read the window {word!r}")
    ix = _INDEX.search(text)
    return Rules(window, ix.group(1) if ix else None)
