"""A reliability plot as a PNG, written with zlib and struct alone (no plotting library).

The square is probability predicted (x) against frequency observed (y), both 0..1: the grey
diagonal is perfect calibration; one polyline and dots per model (first blue, second red),
each dot's size growing with the bin's count; a legend swatch per model in the top left.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib

WHITE, GREY, BLACK = (255, 255, 255), (190, 190, 190), (40, 40, 40)
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44)]


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(WHITE * (width * height))

    def set(self, x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            o = (y * self.w + x) * 3
            self.px[o:o + 3] = bytes(c)

    def rect(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int]) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for x in range(min(x0, x1), max(x0, x1) + 1):
                self.set(x, y, c)

    def line(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int],
             width: int = 1) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        r = width // 2
        for k in range(steps + 1):
            x = round(x0 + (x1 - x0) * k / steps)
            y = round(y0 + (y1 - y0) * k / steps)
            self.rect(x - r, y - r, x + r, y + r, c)

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        head = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def reliability_png(series: list[list[dict]], size: int = 360) -> bytes:
    """``series``: per model, the reliability bins ({"mean_p", "observed", "n"})."""
    pad = 30
    c = Canvas(size, size)
    span = size - 2 * pad

    def xy(p: float, q: float) -> tuple[int, int]:
        return pad + round(p * span), size - pad - round(q * span)

    for k in range(11):  # grid and ticks every 0.1
        x, _ = xy(k / 10, 0)
        _, y = xy(0, k / 10)
        c.line(x, size - pad, x, size - pad + (6 if k % 5 == 0 else 3), BLACK)
        c.line(pad - (6 if k % 5 == 0 else 3), y, pad, y, BLACK)
    c.line(*xy(0, 0), *xy(1, 1), GREY, 1)
    c.line(*xy(0, 0), *xy(1, 0), BLACK)
    c.line(*xy(0, 0), *xy(0, 1), BLACK)
    c.line(*xy(1, 0), *xy(1, 1), BLACK)
    c.line(*xy(0, 1), *xy(1, 1), BLACK)
    for m, bins in enumerate(series):
        colour = COLOURS[m % len(COLOURS)]
        pts = [(b["mean_p"], b["observed"], b["n"]) for b in bins if b.get("n")]
        total = sum(n for *_, n in pts) or 1
        for (p0, q0, _), (p1, q1, _) in itertools.pairwise(pts):
            c.line(*xy(p0, q0), *xy(p1, q1), colour, 2)
        for p, q, n in pts:
            r = 2 + round(4 * math.sqrt(n / total))
            x, y = xy(p, q)
            c.rect(x - r, y - r, x + r, y + r, colour)
        c.rect(pad + 6, pad + 6 + 14 * m, pad + 24, pad + 14 + 14 * m, colour)
    return c.png()
