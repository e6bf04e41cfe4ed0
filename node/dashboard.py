"""The live dashboard: a read-only page that `arnode start` serves, by default on 127.0.0.1 only.

One page (dashboard.html, no external scripts, so it works offline) polls two endpoints:
``/api/state`` (the leaderboard per track, the best config's lineage, the hypotheses, the findings,
workers, peers, recent records) and ``/progress.png`` (the progress picture of `arnode plot`). Nothing slow
runs on the trio thread: the ledger's part of the state, and the picture's inputs, are read on the
LedgerReader's thread; the picture is drawn in a worker thread of its own, once per new record
count. Starlette on Hypercorn's trio worker; nothing here writes anything: the page's "since you
last looked" is remembered by each browser, not by the node.
"""

import dataclasses
import io
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as ServerConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from node import progress, report
from node.ledger_reader import LedgerReader
from node.store.ledger import Ledger
from protocol.acceptance import Run, TrackView
from protocol.config import Config
from protocol.findings import DEAD_END_HEADER, FAILED, HEADER, Finding, describe, findings

log = logging.getLogger("arnode.dashboard")
SERVER_LOG = logging.getLogger("arnode.dashboard.server")
SERVER_LOG.setLevel(logging.WARNING)

PAGE = Path(__file__).with_name("dashboard.html")
LEADERBOARD_ROWS = 20
RECENT_RECORDS = 30
HYPOTHESIS_ROWS = 20  # per track: the open ones first, newest first
FINDING_ROWS = 15  # of the changes, helping ones first, and of the dead ends


class Dashboard:
    """What the page shows, from the node's ledger (through its reader) and its control handlers (status, peers).

    The methods that take a ``ledger`` run on the reader's thread, one at a time: they alone touch the caches.
    """

    def __init__(self, reader: LedgerReader, handlers: dict[str, Callable[[], Any]]) -> None:
        self.reader, self.handlers = reader, handlers
        self._picture: tuple[int, bytes] = (-1, b"")
        self._tracks: tuple[int, list[dict[str, Any]]] = (-1, [])  # (ledger size, panels) like the picture
        self._hypotheses: tuple[int, list[dict[str, Any]]] = (-1, [])
        self._findings: tuple[int, dict[str, Any]] = (-1, {})
        self._drawing = trio.Lock()
        self._replays: dict[str, progress.BestReplay] = {}  # per track, the past bests drawn: used under _drawing

    async def state(self) -> dict[str, Any]:
        return {
            "status": self.handlers["status"](),
            "peers": self.handlers["peers"](),
            **await self.reader.read(self._ledger_state),
        }

    def _ledger_state(self, ledger: Ledger) -> dict[str, Any]:
        views = ledger.assess()
        accepted = {key: progress.accepted_configs(view) for key, view in views.items()}
        return {
            "tracks": self._track_panels(ledger, views),
            "hypotheses": self._hypothesis_panels(ledger),
            "findings": self._findings_panel(ledger, views),
            "recent": [
                {**report.record_row(record), "status": _status(record, accepted)}
                for record in ledger.recent(RECENT_RECORDS)
            ],
        }

    def _track_panels(self, ledger: Ledger, views: dict[str, TrackView]) -> list[dict[str, Any]]:
        """Each track's panel, rebuilt only when the ledger has grown: the holdout scores decode records."""
        if self._tracks[0] != len(ledger):
            self._tracks = (len(ledger), [self._track(ledger, view) for view in views.values()])
        return self._tracks[1]

    def _hypothesis_panels(self, ledger: Ledger) -> list[dict[str, Any]]:
        """Per track, its hypotheses by state and the newest, open first; rebuilt only when the ledger has grown."""
        if self._hypotheses[0] != len(ledger):
            panels: dict[str, dict[str, Any]] = {}
            for row in report.hypothesis_rows(ledger):
                panel = panels.setdefault(
                    row["track"],
                    {"track": row["track"], "score": report.HYPOTHESIS_HEADER, "open": 0, "answered": 0, "invalid": 0},
                )
                panel[row["status"]] += 1
                panel.setdefault("rows", []).append(row)
            for panel in panels.values():  # a stable sort: newest first within open and within the rest
                panel["rows"] = sorted(panel["rows"], key=lambda row: row["status"] != "open")[:HYPOTHESIS_ROWS]
            self._hypotheses = (len(ledger), list(panels.values()))
        return self._hypotheses[1]

    def _findings_panel(self, ledger: Ledger, views: dict[str, TrackView]) -> dict[str, Any]:
        """What each change did, and what the page remembers between visits; rebuilt only when the ledger has grown."""
        if self._findings[0] != len(ledger):
            runs = {key: ledger.runs(key) for key in views}
            found = findings(views, runs, ledger.resolve_config)
            self._findings = (len(ledger), _findings_panel(found, views, runs, ledger.resolve_config))
        return self._findings[1]

    def _track(self, ledger: Ledger, view: TrackView) -> dict[str, Any]:
        runs = ledger.runs(view.track.key)
        shown = (stats.config for stats in report.ranked(view)[:LEADERBOARD_ROWS])
        holdout = report.holdout_scores(ledger, view.track.key, shown)  # to people only, like `arnode results`
        return {
            "track": view.track.key,
            "title": progress.headline(len(runs), view.best.config if view.best else None),
            "sigma": view.sigma,
            "score": report.score_header(ledger.policy),  # what the leaderboard's numbers are, in one line
            "leaderboard": report.leaderboard_rows(view, ledger.resolve_config, LEADERBOARD_ROWS, holdout),
            "lineage": self._lineage(view),
        }

    def _lineage(self, view: TrackView) -> list[dict[str, Any]]:
        """The best config's ancestry, default first: which change came from which."""
        stats = {s.config: s for s in view.leaderboard}
        chain, node = [], view.best
        while node is not None and node.config not in {link["config"] for link in chain}:
            chain.append(
                {
                    "config": node.config,
                    "change": "default" if node.is_default else ", ".join(f"{k} -> {v}" for k, v in node.diff.items()),
                    **dataclasses.asdict(report.Score.of(node)),
                }
            )
            node = None if node.is_default else stats.get(node.parent)
        return chain[::-1]

    async def picture(self) -> bytes:
        """The progress PNG, redrawn only when the ledger has grown; drawn beside the reader, not on it.

        A request cancelled mid-drawing (the node stopping, the browser gone) leaves the drawing to
        finish unseen with the replays it holds; the next one starts from fresh replays.
        """
        async with self._drawing:
            count, inputs = await self.reader.read(_picture_inputs, self._picture[0])
            if inputs is not None:
                replays = self._replays
                self._replays = {}  # given back below if the drawing is not abandoned
                png = await trio.to_thread.run_sync(_draw, *inputs, replays, abandon_on_cancel=True)
                self._picture, self._replays = (count, png), replays
            return self._picture[1]

    def app(self) -> Starlette:
        page = PAGE.read_text(encoding="utf-8")

        async def index(_: Request) -> HTMLResponse:
            return HTMLResponse(page)

        async def state(_: Request) -> Response:
            return Response(report.dumps(await self.state()), media_type="application/json")

        async def picture(_: Request) -> Response:
            return Response(await self.picture(), media_type="image/png", headers={"Cache-Control": "no-store"})

        routes = [Route("/", index), Route("/api/state", state), Route("/progress.png", picture)]
        return Starlette(routes=routes)


def _status(record, accepted: dict[str, frozenset[str]]) -> str | None:
    if record.kind != "result":
        return None
    return progress.run_status(record.body["outcome"], record.body["config"], accepted.get(record.track.key, ()))


def _findings_panel(
    found: list[Finding], views: dict[str, TrackView], runs: dict[str, list[Run]], resolve: Callable[[str], Config]
) -> dict[str, Any]:
    """The findings panel's rows, and the facts the page compares with its last visit: every accepted
    config with its change, each judged change's verdict, failed runs per change and per track."""
    rows = [f for f in found if not f.only_a_dead_end][:FINDING_ROWS]
    dead_ends = [f for f in found if f.dead_end][:FINDING_ROWS]
    accepted = [
        {
            "track": key,
            "config": s.config,
            "change": "default" if s.is_default else ", ".join(describe(resolve(s.parent), s.diff)),
        }
        for key, view in views.items()
        for s in view.leaderboard
        if s.accepted
    ]
    return {
        "header": HEADER,
        "dead_end_header": DEAD_END_HEADER,
        "changes": len(found),
        "rows": [_finding_row(f) for f in rows],
        "dead_ends": [_finding_row(f) for f in dead_ends],
        "accepted": accepted,
        "verdicts": {f.change: f.verdict for f in found if f.verdict != "open"},  # open ones are no news
        "failures": {f.change: sum(f.failures.values()) for f in found if f.failures},
        "tracks": {
            key: {"runs": len(of), "failed": sum(run.outcome in FAILED for run in of)} for key, of in runs.items()
        },
    }


def _finding_row(finding: Finding) -> dict[str, Any]:
    """A finding without its per-track detail, which the page does not show."""
    return {name: value for name, value in dataclasses.asdict(finding).items() if name != "tracks"}


def _picture_inputs(ledger: Ledger, drawn_at: int) -> tuple[int, tuple | None]:
    """The ledger's size and, if it differs from ``drawn_at``, immutable copies of what the picture shows."""
    if len(ledger) == drawn_at:
        return drawn_at, None
    views = ledger.assess()
    runs = {key: list(ledger.runs(key)) for key in views}
    return len(ledger), (runs, views, ledger.policy, report.accepted_holdout(ledger, views))


def _draw(runs, views, policy, holdout, replays: dict[str, progress.BestReplay]) -> bytes:
    out = io.BytesIO()
    progress.draw(progress.ledger_progress(runs, views, policy, holdout, replays), out)
    return out.getvalue()


async def serve_dashboard(dashboard: Dashboard, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve the page until cancelled; starts with its URL, or None (and one warning) if it cannot bind."""
    try:
        sock = socket.create_server((host, port))
    except OSError as err:  # a busy port costs the page, never the node
        log.warning("dashboard: cannot listen on %s:%d (%s); running without it", host, port, err.strerror or err)
        task_status.started(None)
        return
    url = f"http://{host}:{sock.getsockname()[1]}/"
    config = ServerConfig()
    config.bind = [f"fd://{sock.detach()}"]  # the server owns the bound socket from here, and closes it
    config.accesslog = None
    config.errorlog = SERVER_LOG  # its warnings and errors, not its banner
    log.info("dashboard on %s", url)
    await serve(dashboard.app(), config, task_status=_Started(task_status, url))


class _Started:
    """Reports our URL when Hypercorn reports its binds."""

    def __init__(self, task_status, url: str) -> None:
        self.task_status, self.url = task_status, url

    def started(self, _binds=None) -> None:
        self.task_status.started(self.url)
