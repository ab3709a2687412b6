"""KalshiWS's connection: websockets' asyncio ClientConnection whose data messages go
straight to a callback, in order, as they are read - not through websockets' message queue.

For every message websockets runs its frame parser (a generator), queues the message and
wakes the task that reads it: about two thirds of a bare websockets + orjson client's CPU per
message (``benchmarks/feed_ingest.py``), which the market feed pays for some 100,000 small
frames a second. Once the connection is open, :class:`FeedConnection` splits what it reads
into frames itself:

* a whole text or binary frame - FIN set, no RSV bit (not compressed), not masked, within
  ``max_size``, no fragmented message under way - goes to ``on_message`` as bytes;
* every other frame (ping, pong, close, a fragment, a compressed or masked frame, one too
  large) is fed whole to websockets' protocol (the frames between two of the first kind in
  one go; after a fragment or a compressed frame, the rest of the read), which answers
  pings, checks, decompresses, closes and fails the connection as it always does; its data
  messages go to ``on_message`` too, fragments joined, in the order of the stream.

The handshake's response goes to the protocol (frames read with it are split as above);
once a close has begun, every byte does.

``on_message`` returns False when its consumer is full: the connection then stops reading
from the socket and keeps the bytes it has not handled; :meth:`FeedConnection.resume` goes on.
The one difference a peer can see: a text frame that is not UTF-8 is handed on (the JSON
parser rejects it) instead of closing the connection with 1007.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import BINARY, CONT, TEXT, Frame
from websockets.protocol import CONNECTING, OPEN, Protocol

# the first byte of a whole text / binary frame: FIN, no RSV bit, opcode 1 / 2
_WHOLE_TEXT, _WHOLE_BINARY = 0x81, 0x82
_DATA = frozenset({TEXT, BINARY, CONT})

OnMessage = Callable[[bytes], bool]


class FeedConnection(ClientConnection):
    """A client connection that hands data messages to ``on_message`` (see the module) and
    records when bytes last arrived (``last_frame_at``: the heartbeat watch)."""

    def __init__(self, protocol: Protocol, *, on_message: OnMessage, **kw: Any) -> None:
        super().__init__(protocol, **kw)
        self.on_message = on_message
        self.last_frame_at = 0.0
        self._rest = b""  # read and not handled yet: a partial frame, or all held while paused
        self._held = False  # the consumer is full: reading paused
        self._fragments: list[bytes] = []

    # -- reading -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_frame_at = self.loop.time()
        if self._rest:
            data = self._rest + data
            self._rest = b""
        if self._held:  # (a transport may deliver what it already read)
            self._rest = data
            return
        self._receive(data)

    def resume(self) -> None:
        """The consumer has room again: handle what was held, then read on."""
        if not self._held:
            return
        self._held = False
        data, self._rest = self._rest, b""
        if data:
            self._receive(data)
        if not self._held and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _framed(self, data: bytes) -> bytes:
        """What of ``data`` is for :meth:`_receive` to split; the rest goes to the protocol
        here: the handshake's response, everything once a close has begun (or a refused
        handshake), everything while the protocol holds part of a frame."""
        protocol = self.protocol
        if protocol.state is CONNECTING:  # the response, then maybe frames
            head = data.find(b"\r\n\r\n") + 4
            if head < 4:
                head = len(data)
            super().data_received(data[:head])
            data = data[head:]
        if data and (protocol.state is not OPEN or protocol.reader.buffer):
            super().data_received(data)
            return b""
        return data

    def _receive(self, data: bytes) -> None:
        data = self._framed(data)
        on_message = self.on_message
        limit = self.protocol.max_message_size
        whole = not self._fragments
        n = len(data)
        pos = run = 0  # run: where the frames not yet given to the protocol begin
        while n - pos > 1 and not self._held:
            # frame_bounds, inlined for an unmasked frame of up to 64 KiB (one per message)
            second = data[pos + 1]
            if second < 126:
                start = pos + 2
                end = start + second
            elif second == 126 and n - pos > 3:
                start = pos + 4
                end = start + (data[pos + 2] << 8 | data[pos + 3])
            else:
                start, end = frame_bounds(data, pos) or (n, n + 1)
            if end > n:  # not all read yet
                break
            first = data[pos]
            if ((first == _WHOLE_TEXT or first == _WHOLE_BINARY) and second < 0x80
                    and whole and (limit is None or end - start <= limit)):
                if run < pos and not self._to_protocol(data, run, pos):
                    return
                if not on_message(data[start:end]):
                    self._hold()
                run = end
            elif first & 0x0F < 3:  # a fragment or a compressed frame: the protocol's, and
                whole = False  # so is every data frame after it in this read (in order)
            pos = end
        if run < pos and not self._to_protocol(data, run, pos):
            return
        self._rest = data[pos:]

    def _to_protocol(self, data: bytes, start: int, end: int) -> bool:
        """Whole frames (``data[start:end]``) to the protocol; False when a close began
        (then the protocol has every byte after them too)."""
        super().data_received(data[start:end])
        if self.protocol.state is OPEN:
            return True
        if end < len(data):
            super().data_received(data[end:])
        return False

    def process_event(self, event: Any) -> None:
        """The protocol's data frames go to ``on_message`` too (fragments joined)."""
        if not isinstance(event, Frame) or event.opcode not in _DATA:
            super().process_event(event)  # the handshake's response, ping, pong, close
            return
        if event.opcode is not CONT:
            self._fragments = []
        if not event.fin:
            self._fragments.append(event.data)
            return
        data = event.data
        if self._fragments:
            data = b"".join((*self._fragments, data))
            self._fragments = []
        if not self.on_message(data):
            self._hold()

    @property
    def held(self) -> bool:
        """Reading is paused until :meth:`resume` (the consumer was full)."""
        return self._held

    def _hold(self) -> None:
        if not self._held:
            self._held = True
            if self.transport is not None:
                self.transport.pause_reading()


def frame_bounds(data: bytes, pos: int) -> tuple[int, int] | None:
    """(where its payload starts, where it ends) of the frame at ``pos`` in ``data``; None
    when ``data`` does not hold the whole frame."""
    n = len(data)
    if n - pos < 2:
        return None
    second = data[pos + 1]
    size, head = second & 0x7F, 2
    if size == 126:
        if n - pos < 4:
            return None
        size, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
    elif size == 127:
        if n - pos < 10:
            return None
        size, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
    if second & 0x80:
        head += 4  # a masking key (a server's frame has none: the protocol refuses it)
    end = pos + head + size
    return (pos + head, end) if end <= n else None
