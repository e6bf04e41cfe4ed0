"""How a running node talks to its human: log lines to stderr and a file, and a live view on a TTY."""

import logging
import logging.handlers
import os
import sys
from pathlib import Path

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.progress_bar import ProgressBar
from rich.table import Table

from node import report
from node.daemon import Daemon
from node.research.run_progress import progress_words

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REFRESH_S = 1.0
LOG_FILE_BYTES = 10 * 2**20  # then arnode.log rolls over to arnode.log.1, keeping LOG_FILES_KEPT old ones
LOG_FILES_KEPT = 5
console = Console(stderr=True)


def setup_logging(log_file: Path, debug: bool, live: bool) -> None:
    """Everything to the log file; stderr gets plain lines, or rich lines above the live view."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILES_KEPT, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    stderr_handler = RichHandler(console=console, show_path=False) if live else logging.StreamHandler(sys.stderr)
    if not live:
        stderr_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.handlers = [file_handler, stderr_handler]
    if not debug:
        logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # the library reports peers' faults as its errors
        stderr_handler.addFilter(_not_from_libp2p)


def _not_from_libp2p(record: logging.LogRecord) -> bool:
    """Parts of libp2p log through the root logger (e.g. "Error getting transport addresses"): file only."""
    return f"{os.sep}libp2p{os.sep}" not in record.pathname


async def run_with_view(daemon: Daemon) -> None:
    """Run the daemon with a status panel that redraws every second until it stops."""
    with Live(_render(daemon), console=console, refresh_per_second=2, transient=True) as live:
        async with trio.open_nursery() as nursery:

            async def redraw() -> None:
                while True:
                    await trio.sleep(REFRESH_S)
                    live.update(_render(daemon))

            nursery.start_soon(redraw)
            await daemon.run()
            nursery.cancel_scope.cancel()


def _render(daemon: Daemon) -> Group:
    status = daemon.status()
    table = Table.grid(padding=(0, 2))
    table.add_row("node", status["peer_id"], "peers", str(status["peers"]))
    table.add_row("track", status["track"], "records", str(status["records"]))
    table.add_row("best", report.best_in_words(status["best"]))
    parts: list = [table]
    for worker in status["workers"]:
        parts.append(_worker_line(worker))
    return Group(*parts)


def _worker_line(worker: dict) -> Table:
    """A worker's state; a running experiment with a bar of its budget, time in and time left, its loss."""
    line = Table.grid(padding=(0, 1))
    current = worker["current"]
    if current is None:
        line.add_row(worker["name"], worker["idle_reason"] or "choosing the next experiment")
        return line
    label = f"{current['kind']} {current['config'][:10]} seed {current['seed']}"
    if "phase" not in current:  # the trainer has ended: the result is being signed and shared
        line.add_row(worker["name"], label, "recording the result")
        return line
    bar = ProgressBar(total=1.0, completed=current["fraction"], width=30)
    line.add_row(worker["name"], label, bar, progress_words(current))
    return line
