"""The live dashboard: a read-only page that `arnode start` serves, by default on 127.0.0.1 only.

One page (dashboard.html, no external scripts, so it works offline) polls two endpoints:
``/api/state`` (the leaderboard per track, the best config's lineage, the hypotheses, workers,
peers, recent records) and ``/progress.png`` (the progress picture of `arnode plot`). The state is read in the
daemon's own thread, where the ledger lives; the picture, the one slow part, is replayed and drawn
in a worker thread from immutable copies, once per new record count. Starlette on Hypercorn's
trio worker; nothing here writes anything.
"""

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
from node.store.ledger import Ledger
from protocol.acceptance import TrackView

log = logging.getLogger("arnode.dashboard")
SERVER_LOG = logging.getLogger("arnode.dashboard.server")
SERVER_LOG.setLevel(logging.WARNING)

PAGE = Path(__file__).with_name("dashboard.html")
LEADERBOARD_ROWS = 20
RECENT_RECORDS = 30
HYPOTHESIS_ROWS = 20  # per track: the open ones first, newest first


class Dashboard:
    """What the page shows, from the node's ledger and its control handlers (status, peers)."""

    def __init__(self, ledger: Ledger, handlers: dict[str, Callable[[], Any]]) -> None:
        self.ledger, self.handlers = ledger, handlers
        self._picture: tuple[int, bytes] = (-1, b"")
        self._tracks: tuple[int, list[dict[str, Any]]] = (-1, [])  # (ledger size, panels) like the picture
        self._hypotheses: tuple[int, list[dict[str, Any]]] = (-1, [])
        self._drawing = trio.Lock()

    def state(self) -> dict[str, Any]:
        views = self.ledger.assess()
        accepted = {key: progress.accepted_configs(view) for key, view in views.items()}
        return {
            "status": self.handlers["status"](),
            "peers": self.handlers["peers"](),
            "tracks": self._track_panels(views),
            "hypotheses": self._hypothesis_panels(),
            "recent": [
                {**report.record_row(record), "status": _status(record, accepted)}
                for record in self.ledger.recent(RECENT_RECORDS)
            ],
        }

    def _track_panels(self, views: dict[str, TrackView]) -> list[dict[str, Any]]:
        """Each track's panel, rebuilt only when the ledger has grown: the holdout scores decode records."""
        if self._tracks[0] != len(self.ledger):
            self._tracks = (len(self.ledger), [self._track(view) for view in views.values()])
        return self._tracks[1]

    def _hypothesis_panels(self) -> list[dict[str, Any]]:
        """Per track, its hypotheses by state and the newest, open first; rebuilt only when the ledger has grown."""
        if self._hypotheses[0] != len(self.ledger):
            panels: dict[str, dict[str, Any]] = {}
            for row in report.hypothesis_rows(self.ledger):
                panel = panels.setdefault(row["track"], {"track": row["track"], "open": 0, "answered": 0, "invalid": 0})
                panel[row["status"]] += 1
                panel.setdefault("rows", []).append(row)
            for panel in panels.values():  # a stable sort: newest first within open and within the rest
                panel["rows"] = sorted(panel["rows"], key=lambda row: row["status"] != "open")[:HYPOTHESIS_ROWS]
            self._hypotheses = (len(self.ledger), list(panels.values()))
        return self._hypotheses[1]

    def _track(self, view: TrackView) -> dict[str, Any]:
        runs = self.ledger.runs(view.track.key)
        accepted = progress.accepted_configs(view)
        kept = sum(progress.run_status(run.outcome, run.config, accepted) == "keep" for run in runs)
        shown = (stats.config for stats in view.leaderboard[:LEADERBOARD_ROWS])
        holdout = report.holdout_scores(self.ledger, view.track.key, shown)  # to people only, like `arnode results`
        return {
            "track": view.track.key,
            "title": f"{len(runs)} experiments, {kept} kept",
            "sigma": view.sigma,
            "leaderboard": report.leaderboard_rows(view, self.ledger.resolve_config, LEADERBOARD_ROWS, holdout),
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
                    "val_bpb": node.evidence_mean,
                    "runs": node.runs,
                    "authors": node.authors,
                }
            )
            node = None if node.is_default else stats.get(node.parent)
        return chain[::-1]

    async def picture(self) -> bytes:
        """The progress PNG, redrawn only when the ledger has grown."""
        async with self._drawing:
            count = len(self.ledger)
            if self._picture[0] != count:
                views = self.ledger.assess()
                runs = {key: list(self.ledger.runs(key)) for key in views}
                holdout = report.accepted_holdout(self.ledger, views)  # the ledger is read here, not in the thread
                png = await trio.to_thread.run_sync(_draw, runs, views, self.ledger.policy, holdout)
                self._picture = (count, png)
            return self._picture[1]

    def app(self) -> Starlette:
        page = PAGE.read_text(encoding="utf-8")

        async def index(_: Request) -> HTMLResponse:
            return HTMLResponse(page)

        async def state(_: Request) -> Response:
            return Response(report.dumps(self.state()), media_type="application/json")

        async def picture(_: Request) -> Response:
            return Response(await self.picture(), media_type="image/png", headers={"Cache-Control": "no-store"})

        routes = [Route("/", index), Route("/api/state", state), Route("/progress.png", picture)]
        return Starlette(routes=routes)


def _status(record, accepted: dict[str, frozenset[str]]) -> str | None:
    if record.kind != "result":
        return None
    return progress.run_status(record.body["outcome"], record.body["config"], accepted.get(record.track.key, ()))


def _draw(runs, views, policy, holdout) -> bytes:
    out = io.BytesIO()
    progress.draw(progress.ledger_progress(runs, views, policy, holdout), out)
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
