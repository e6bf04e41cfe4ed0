"""`arnode findings`: what each kind of change did, over every node's results (protocol/findings.py).

Two tables for people, each under one line that says what its numbers are: the changes by what they
did, helping ones first, then the dead ends (changes that hurt, or whose every run failed) so nobody
repeats them. ``--json`` gives every finding in full, per track too.
"""

import argparse
import dataclasses

from node import report
from node.commands.reading import open_ledger, print_table, track_views
from node.home import Home
from protocol.findings import DEAD_END_HEADER, HEADER, Finding, Lead
from protocol.findings import findings as derive

COLUMNS = (
    "change",
    "verdict",
    "tried",
    "runs",
    "helped",
    "nothing",
    "hurt",
    "failed",
    "lead_bpb",
    "lead_sigma",
    "held_on",
)
DEAD_END_COLUMNS = ("change", "hurt_on", "failed_on", "tried", "failed_runs", "lead_bpb", "lead_sigma")


def _findings_of(args: argparse.Namespace, home: Home) -> list[Finding]:
    """The findings of this home's ledger (on ``args.track`` only, if given)."""
    with open_ledger(args, home) as ledger:
        views = track_views(ledger, args.track)
        if not views:
            return []
        runs = {key: ledger.runs(key) for key in views}
        return derive(views, runs, ledger.resolve_config)


def findings(args: argparse.Namespace, home: Home) -> int:
    found = _findings_of(args, home)
    if args.json:
        print(report.dumps([{**dataclasses.asdict(f), "dead_end": f.dead_end} for f in found]))
        return 0
    if not found:
        print("no changes tried yet")
        return 0
    shown = [f for f in found if not f.only_a_dead_end]
    if shown:
        print(HEADER)
        print_table([_row(f) for f in shown], COLUMNS, lambda row: row["verdict"] == "helps")
    dead = [f for f in found if f.dead_end]
    if dead:
        print(DEAD_END_HEADER)
        print_table([_row(f) for f in dead], DEAD_END_COLUMNS, lambda _: False)
    return 0


def _row(finding: Finding) -> dict:
    return {
        **dataclasses.asdict(finding),
        "lead_bpb": _interval(finding.lead, "bpb", 6),
        "lead_sigma": _interval(finding.lead, "sigmas", 1),
        "held_on": " ".join(finding.held_on),
        "hurt_on": " ".join(finding.hurt_on),
        "failed_on": " ".join(finding.failed_on),
        "failed_runs": ", ".join(f"{outcome} x{n}" for outcome, n in finding.failures.items()),
    }


def _interval(lead: Lead | None, unit: str, digits: int) -> str | None:
    if lead is None:
        return None
    value, low, high = (getattr(lead, unit + end) for end in ("", "_low", "_high"))
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
