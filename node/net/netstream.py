"""A libp2p stream seen through trio's HalfCloseableStream methods, which the sync protocol speaks.

Stream failures become ``trio.BrokenResourceError``, trio's word for a peer that went away, so
the protocol code handles one exception type and never imports libp2p.
"""

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF

RECEIVE_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 1.0  # a close or reset that takes longer is given up (the shielded wait is bounded)


class NetStreamAdapter:
    def __init__(self, stream: INetStream) -> None:
        self.stream = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; b"" once the peer has closed its side."""
        try:
            return await self.stream.read(max_bytes or RECEIVE_BYTES)
        except StreamEOF:
            return b""
        except Exception as err:  # reset, closed connection, muxer error: all mean the peer is gone
            raise trio.BrokenResourceError(f"stream broke: {type(err).__name__}") from err

    async def send_all(self, data: bytes) -> None:
        try:
            await self.stream.write(data)
        except Exception as err:
            raise trio.BrokenResourceError(f"stream broke: {type(err).__name__}") from err

    async def send_eof(self) -> None:
        try:
            await self.stream.close_write()
        except Exception as err:
            raise trio.BrokenResourceError(f"stream broke: {type(err).__name__}") from err

    async def aclose(self) -> None:
        """Close the stream gracefully; if that fails or hangs, reset it, so the peer never waits on a
        stream we have left. Never raises."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                try:
                    await self.stream.close()
                    return
                except Exception:  # the stream or its connection is already broken: reset what is left
                    pass
            await self.reset()

    async def reset(self) -> None:
        """Abort the stream both ways at once (the peer's next read fails): for a peer that broke the protocol.
        Never raises."""
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            try:
                await self.stream.reset()
            except Exception:  # the connection is gone: nothing is left to reset
                return
