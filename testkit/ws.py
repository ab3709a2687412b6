"""WebSocket frames as a server writes them (RFC 6455 5.2), for tests and benchmarks that
write raw bytes to a client: split anywhere, fragmented, compressed or malformed on purpose."""

from __future__ import annotations

TEXT, BINARY, CONT, PING = 0x1, 0x2, 0x0, 0x9


def ws_frame(payload: bytes, opcode: int = TEXT, *, fin: bool = True, rsv1: bool = False,
             mask: bytes | None = None) -> bytes:
    """One frame: unmasked as a server's (``mask``: a 4-byte key, which a client refuses)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 1 << 16:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload
