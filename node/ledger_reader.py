"""The daemon's reads of the ledger, off the trio thread: a view can take seconds on a big ledger,
and a trio thread busy for seconds stops answering the network.

One thread owns a read-only Ledger of the same file (an SQLite connection belongs to the thread
that opened it) and, before each read, takes in what the writer committed since (Ledger.catch_up),
so a read sees every committed record and the views are kept by what changed. Reads run one at a
time, in the order asked. A caller that is cancelled stops waiting; its read finishes unseen.
"""

import concurrent.futures
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import trio

from node.store.ledger import Ledger
from protocol.policy import Policy

T = TypeVar("T")


class LedgerReader:
    def __init__(self, path: Path, policy: Policy) -> None:
        self.path, self.policy = Path(path), policy
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-reader")
        self._ledger: Ledger | None = None  # opened on the reader's thread, at the first read

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(ledger, *args)`` on the reader's thread, with every record committed so far."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        future = self._thread.submit(self._call, fn, args)
        future.add_done_callback(lambda _: _wake(token, done))
        await done.wait()
        return future.result()

    def close(self) -> None:
        """Close the reader's ledger after the reads already asked for; nothing waits for them."""
        self._thread.submit(self._close)
        self._thread.shutdown(wait=False)

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        if self._ledger is None:
            self._ledger = Ledger.open(self.path, self.policy, read_only=True)
        self._ledger.catch_up()
        return fn(self._ledger, *args)

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _wake(token: trio.lowlevel.TrioToken, done: trio.Event) -> None:
    """Wake the waiting trio task from the reader's thread."""
    with suppress(trio.RunFinishedError):  # the daemon has ended; nobody waits for this read any more
        token.run_sync_soon(done.set)
