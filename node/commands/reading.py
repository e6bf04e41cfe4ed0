"""`arnode results`, `best`, `hypotheses`, `export`, `plot`: the local ledger, opened read-only.

A home without a swarm or a ledger yet simply has no results: the commands print an empty
leaderboard (``[]`` with --json) and succeed, so a newcomer's first look is never an error.
"""

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from node import progress, report
from node.errors import NodeError
from node.home import Home
from node.store.ledger import Ledger
from node.swarmfile import swarm_of
from protocol.acceptance import TrackView

RECORD_COLUMNS = ("ts_ms", "id", "kind", "outcome", "val_bpb", "test_bpb", "config_hash", "author", "hypothesis")
PIPE_WIDTH = 200  # characters a line of the human table may take when not on a terminal
BOARD_COLUMNS = ("rank", "config_hash", "estimate", "runs", "authors", "failed", "mean_test_bpb", "standing", "diff")
HYPOTHESIS_COLUMNS = (
    "ts_ms",
    "author",
    "parent",
    "change",
    "status",
    "answer",
    "estimate",
    "runs",
    "vs_parent",
    "verdict",
    "rationale",
)
BOARD_PROSE = {"diff": 60}  # a long change wraps instead of being cut
HYPOTHESIS_STATES = ("open", "answered", "invalid")
HYPOTHESIS_PROSE = {"verdict": 32, "rationale": 60}  # wrapped columns, and their widest line


@contextmanager
def open_ledger(args: argparse.Namespace, home: Home) -> Iterator[Ledger | None]:
    """The swarm's ledger in this home, read-only; None when the home has no swarm or no ledger yet."""
    if not getattr(args, "swarm_key", None) and not home.swarm_file.exists():
        yield None
        return
    _, policy, _ = swarm_of(home, getattr(args, "swarm_key", None))
    if not home.ledger_file.exists():
        yield None
        return
    ledger = Ledger.open(home.ledger_file, policy, read_only=True)
    try:
        yield ledger
    finally:
        ledger.close()


def track_views(ledger: Ledger | None, track: str | None) -> dict[str, TrackView]:
    """Every track's view, or only ``track``'s: a NodeError naming the known tracks if it has none."""
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
        boards = []
        policy = ledger.policy if ledger else None
        for key, view in track_views(ledger, args.track).items():
            holdout = report.holdout_scores(ledger, key, (s.config for s in report.ranked(view)[: args.limit]))
            boards.append((view, report.leaderboard_rows(view, ledger.resolve_config, args.limit, holdout)))
    if args.json or args.tsv or not boards:
        rows = [{"track": view.track.key, **row} for view, board in boards for row in board]
        return _print_rows(args, rows, ("track", *BOARD_COLUMNS) if args.tsv else BOARD_COLUMNS)
    print(report.score_header(policy))
    for view, board in boards:
        print(f"track {view.track.key}: {_track_line(view, len(board))}")
        print_table(board, BOARD_COLUMNS, lambda row: row["standing"] == "best", BOARD_PROSE)
    return 0


def _track_line(view: TrackView, shown: int) -> str:
    """How many configs the table shows, the best's hash and the noise the estimates are judged against."""
    count = len(view.leaderboard)
    configs = f"{count} config" + ("" if count == 1 else "s") + (f" (showing {shown})" if shown < count else "")
    best = f"best {view.best.config[:10]}" if view.best else "no accepted best yet"
    return f"{configs}, {best}, sigma {view.sigma:.6f}"


def best(args: argparse.Namespace, home: Home) -> int:
    with open_ledger(args, home) as ledger:
        summaries = []
        for key, view in track_views(ledger, args.track).items():
            configs = [s.config for s in view.leaderboard if s.is_default or s is view.best]
            holdout = report.holdout_scores(ledger, key, configs)
            if summary := report.best_summary(view, ledger.resolve_config, holdout):
                summaries.append(summary)
    if args.json:
        print(report.dumps(summaries))
        return 0
    if not summaries:
        print("no accepted best config yet")
    for s in summaries:
        print(
            f"track {s['track']}: best {s['config_hash'][:10]} estimate {s['estimate']:.6f} "
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
    gap = summary["holdout_gap"]
    line = f"holdout: mean_test_bpb {summary['mean_test_bpb']:.6f}, {gap:+.6f} from the same runs' val_bpb"
    if summary["gap_growth"] is None:
        return line + "; the default's gap is not measured yet"
    verdict = "the swarm may be fitting the validation split" if summary["gap_growth"] > summary["sigma"] else "fine"
    return line + f" vs the default's {summary['default_holdout_gap']:+.6f} ({verdict})"


def hypotheses(args: argparse.Namespace, home: Home) -> int:
    """Each track's hypotheses, newest first: open, or answered and by which config with what result."""
    with open_ledger(args, home) as ledger:
        every = report.hypothesis_rows(ledger, args.track) if ledger else []
        if args.track is not None and not every:
            track_views(ledger, args.track)  # an unknown track is an error, as in `arnode results`
    by_track: dict[str, list[dict]] = {}
    for row in every:
        by_track.setdefault(row["track"], []).append(row)
    shown = {
        key: [row for row in rows if not args.open or row["status"] == "open"][: args.limit]
        for key, rows in by_track.items()
    }
    if args.json:
        print(report.dumps([row for rows in shown.values() for row in rows]))
        return 0
    print(report.HYPOTHESIS_HEADER if every else "no hypotheses yet")
    for key, rows in shown.items():
        counts = ", ".join(f"{sum(r['status'] == s for r in by_track[key])} {s}" for s in HYPOTHESIS_STATES)
        which = f"the newest {len(rows)}" + (" open" if args.open else "")
        print(f"track {key}: {counts}" + (f" (showing {which})" if len(rows) < len(by_track[key]) else ""))
        if rows:
            cells = [_hypothesis_cells(row) for row in rows]
            print_table(cells, HYPOTHESIS_COLUMNS, lambda r: r["verdict"] == "accepted", HYPOTHESIS_PROSE)
    return 0


def _hypothesis_cells(row: dict) -> dict:
    """A hypothesis as one line: its first answer's result beside it, or what is wrong with it."""
    answer = row["answers"][0] if row["answers"] else {}
    delta, sigmas = answer.get("delta"), answer.get("delta_sigma")
    more = f" (+{len(row['answers']) - 1} more)" if len(row["answers"]) > 1 else ""
    return {
        **row,
        "answer": (answer["config_hash"][:10] + more) if answer else None,
        "estimate": answer.get("estimate"),
        "runs": answer.get("runs"),
        "vs_parent": f"{delta:+.6f} ({sigmas:+.1f}σ)" if delta is not None else None,
        "verdict": answer.get("verdict") or row["problem"],
    }


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
        print_table(rows, columns)
    return 0


def print_table(
    rows: list[dict],
    columns: tuple[str, ...],
    green: Callable[[dict], bool] = lambda row: False,
    prose: Mapping[str, int] = {},
) -> None:
    """One line per row, cut to fit, except ``prose`` columns (name -> most characters a line): they wrap,
    and give up their width first on a narrow terminal."""
    # rich only here: --json, --tsv, export and plot never draw a table
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        title = "time" if column == "ts_ms" else column
        if column in prose:
            table.add_column(title, max_width=prose[column])
        else:
            table.add_column(title, no_wrap=True, overflow="ellipsis")
    for row in rows:
        cells = [_time(row[c]) if c == "ts_ms" else _cell(row[c], full=c in prose) for c in columns]
        table.add_row(*cells, style="green" if green(row) else None)
    # a terminal fits the table to its width; a pipe or a file gets whole hashes and numbers
    Console(width=None if sys.stdout.isatty() else PIPE_WIDTH).print(table)


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
