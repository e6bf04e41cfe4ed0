"""`arnode results`, `best`, `export`, `plot`: the local ledger, opened read-only.

A home without a swarm or a ledger yet simply has no results: the commands print an empty
leaderboard (``[]`` with --json) and succeed, so a newcomer's first look is never an error.
"""

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from node import progress, report
from node.commands.swarm import swarm_of
from node.errors import NodeError
from node.home import Home
from node.store.ledger import Ledger
from protocol.acceptance import TrackView

RECORD_COLUMNS = ("ts_ms", "id", "kind", "outcome", "val_bpb", "test_bpb", "config_hash", "author", "hypothesis")
PIPE_WIDTH = 200  # characters a line of the human table may take when not on a terminal
BOARD_COLUMNS = ("rank", "config_hash", "val_bpb", "test_bpb", "runs", "authors", "verified", "diff")


@contextmanager
def open_ledger(args: argparse.Namespace, home: Home) -> Iterator[Ledger | None]:
    """The swarm's ledger in this home, read-only; None when the home has no swarm or no ledger yet."""
    if not getattr(args, "swarm_key", None) and not home.swarm_file.exists():
        yield None
        return
    _, policy, _ = swarm_of(args, home)
    if not home.ledger_file.exists():
        yield None
        return
    ledger = Ledger.open(home.ledger_file, policy, read_only=True)
    try:
        yield ledger
    finally:
        ledger.close()


def _views(ledger: Ledger | None, track: str | None) -> dict[str, TrackView]:
    views = ledger.assess() if ledger else {}
    if track is not None:
        if track not in views:
            known = ", ".join(views) or "none yet"
            raise NodeError(f"no results on track {track!r}; tracks in the ledger: {known}")
        views = {track: views[track]}
    return views


def results(args: argparse.Namespace, home: Home) -> int:
    with open_ledger(args, home) as ledger:
        if args.all:
            records = ledger.records() if ledger else []
            # roster records (memberships, revocations) belong to no track: `arnode swarm` shows them
            rows = [
                report.record_row(r) for r in records if r.track and (args.track is None or r.track.key == args.track)
            ]
            return _print_rows(args, rows, RECORD_COLUMNS)
        rows = []
        for key, view in _views(ledger, args.track).items():
            holdout = report.holdout_scores(ledger, key, (s.config for s in view.leaderboard[: args.limit]))
            board = report.leaderboard_rows(view, ledger.resolve_config, args.limit, holdout)
            rows += [{"track": key, **row} for row in board]
        return _print_rows(args, rows, BOARD_COLUMNS)


def best(args: argparse.Namespace, home: Home) -> int:
    with open_ledger(args, home) as ledger:
        summaries = []
        for key, view in _views(ledger, args.track).items():
            configs = [s.config for s in view.leaderboard if s.is_default or s is view.best]
            holdout = report.holdout_scores(ledger, key, configs)
            if summary := report.best_summary(view, ledger.resolve_config, holdout):
                summaries.append(summary)
    if args.json:
        print(report.dumps(summaries))
        return 0
    if not summaries:
        print("no verified best config yet")
    for s in summaries:
        print(
            f"track {s['track']}: best {s['config_hash'][:10]} val_bpb {s['val_bpb']:.6f} "
            f"({s['runs']} runs, {s['authors']} authors, sigma {s['sigma']:.6f}): {s['changes']}"
        )
        print(f"  {_holdout_line(s)}")
        for name, value in s["config"].items():
            print(f"  {name:<20}{value}")
    return 0


def _holdout_line(summary: dict) -> str:
    """The val-vs-holdout gap of the best config against the default's, in words."""
    if summary["holdout_gap"] is None:
        return "holdout: not measured for the best config yet (its runs predate the holdout split)"
    line = f"holdout test_bpb {summary['test_bpb']:.6f}, gap to val {summary['holdout_gap']:+.6f}"
    if summary["gap_growth"] is None:
        return line + "; the default's gap is not measured yet"
    verdict = "the swarm may be fitting the validation split" if summary["gap_growth"] > summary["sigma"] else "fine"
    return line + f" vs the default's {summary['default_holdout_gap']:+.6f} ({verdict})"


def export(args: argparse.Namespace, home: Home) -> int:
    with open_ledger(args, home) as ledger:
        rows = report.export_rows(ledger.records("result"), ledger.assess()) if ledger else []
    print("\t".join(report.TSV_HEADER))
    for row in rows:
        print("\t".join(row))
    return 0


def plot(args: argparse.Namespace, home: Home) -> int:
    pictures = []
    with open_ledger(args, home) as ledger:
        if ledger:
            views = ledger.assess()
            runs = {key: ledger.runs(key) for key in views}
            pictures = progress.ledger_progress(runs, views, ledger.policy, report.accepted_holdout(ledger, views))
    progress.draw(pictures, Path(args.output))
    titles = "; ".join(f"{picture.track}: {picture.title}" for picture in pictures) or "no experiments yet"
    print(f"wrote {args.output} ({titles})")
    return 0


def _print_rows(args: argparse.Namespace, rows: list[dict], columns: tuple[str, ...]) -> int:
    if args.json:
        print(report.dumps(rows))
    elif args.tsv:
        print("\t".join(columns))
        for row in rows:
            print("\t".join(_cell(row[c], full=True) for c in columns))
    elif not rows:
        print("no results yet")
    else:
        table = Table(box=None, header_style="bold")
        for column in columns:
            table.add_column("time" if column == "ts_ms" else column, no_wrap=True, overflow="ellipsis")
        for row in rows:
            cells = [_time(row[c]) if c == "ts_ms" else _cell(row[c]) for c in columns]
            table.add_row(*cells, style="green" if row.get("best") else None)
        # a terminal fits the table to its width; a pipe or a file gets whole hashes and numbers
        Console(width=None if sys.stdout.isatty() else PIPE_WIDTH).print(table)
    return 0


def _time(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts_ms / 1000))


def _cell(value: object, full: bool = False) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    if value is None:
        return "-"
    text = " ".join(str(value).split())
    if full:
        return text
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:10]
    if text.startswith("12D3KooW"):
        return text[-8:]
    return text if len(text) <= 60 else text[:57] + "..."
