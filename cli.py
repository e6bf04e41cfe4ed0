"""Run a node of a private research swarm, or read what the swarm has found.

Each node trains small GPTs for a fixed budget, shares every result as a signed record and derives,
with every other node, the same best config per hardware track.
"""

# How it stays light: each subcommand is a function ``(args, home) -> exit code`` in node/commands/
# (see its map), and only the module of the command that runs is imported, after its arguments
# parsed; a read such as ``arnode results`` never loads the network, the LLM client or the trainer.

import argparse
import importlib
import json
import sys
from typing import NoReturn

from node.errors import NodeError
from node.home import Home
from protocol.errors import ProtocolError
from protocol.track import BUDGET_UNITS

# command -> "module in node.commands:function"
COMMANDS: dict[str, str] = {
    "init": "running:init",
    "start": "running:start",
    "train": "running:train",
    "swarm new-key": "swarm:new_key",
    "swarm show": "swarm:show",
    "swarm invite": "swarm:invite",
    "swarm revoke": "swarm:revoke",
    "swarm psk": "swarm:psk",
    "results": "reading:results",
    "best": "reading:best",
    "hypotheses": "reading:hypotheses",
    "findings": "findings:findings",
    "export": "reading:export",
    "plot": "reading:plot",
    "status": "asking:status",
    "peers": "asking:peers",
}

# What `arnode --help` lists, by what a person wants to do; every top-level command in COMMANDS once.
GROUPS: dict[str, dict[str, str]] = {
    "run a node": {
        "init": "create this node's identity and files, and print its peer id",
        "start": "run the node: join the swarm and run experiments",
        "train": "run one experiment locally and print its summary",
    },
    "read what the swarm found (the local ledger; no running node needed)": {
        "results": "the leaderboard, or every record with --all",
        "best": "the accepted best config per track, with its evidence",
        "hypotheses": "ideas published for any node to run: open or answered",
        "findings": "what each kind of change did, over every node's runs",
        "export": "autoresearch's results.tsv",
        "plot": "val_bpb over experiments, like autoresearch's progress.png",
    },
    "ask the running node": {
        "status": "what it is doing now",
        "peers": "the peers it is connected to",
    },
    "manage the swarm": {
        "swarm": "make, show or share a swarm file; invite or revoke members",
    },
}
SUMMARY = {name: text for group in GROUPS.values() for name, text in group.items()}


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line told in one line (the usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def json_object(text: str) -> dict:
    """A command-line JSON object, checked while parsing, before any command module loads."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object of knob -> value: {text[:60]}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text[:40]!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text[:40]}")
    return value


def _epilog() -> str:
    lines = ["commands:"]
    for title, commands in GROUPS.items():
        lines.append(f"  {title}")
        lines += [f"    {name:<12}{text}" for name, text in commands.items()]
    lines += [
        "",
        "`arnode COMMAND --help` shows a command's options. A node keeps its files in the platform's usual",
        "places, or all under --home DIR (or ARNODE_HOME).",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand must survive the subcommand's parser
    common = Parser(add_help=False)
    common.add_argument(
        "--home", default=argparse.SUPPRESS, metavar="DIR", help="keep all files under DIR (env ARNODE_HOME)"
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    in_swarm = Parser(add_help=False)  # commands that read a swarm this home belongs to
    in_swarm.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    parser = Parser(
        prog="arnode",
        usage="arnode [--home DIR] [--debug] COMMAND ...",
        description=__doc__,
        epilog=_epilog(),
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # the commands are listed by group in the epilog, not as argparse's one flat list
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS, prog="arnode")

    def command(name: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common, *parents], description=SUMMARY[name])

    p = command("init")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    swarm = command("swarm")
    swarm_sub = swarm.add_subparsers(dest="swarm_command", required=True, metavar="SWARM_COMMAND")
    p = swarm_sub.add_parser("new-key", parents=[common], help="write a new swarm file: a fresh key and a policy")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: swarm.toml in the home)")
    p.add_argument("--name", default="swarm", help="a name for people; part of the swarm id")
    p.add_argument("--min-runs", type=positive_int, default=4, help="ok runs before a config counts as verified")
    p.add_argument("--min-authors", type=positive_int, default=2, help="distinct nodes among those runs")
    p.add_argument("--sigma-floor", type=float, default=0.002, help="least seed noise assumed, in bpb")
    p.add_argument("--budget-kind", choices=BUDGET_UNITS, default="seconds")
    p.add_argument(
        "--budget", type=positive_int, default=300, help="training budget per run, in the budget kind's unit"
    )
    p.add_argument("--dataset", default="shakespeare", help="shakespeare (embedded) or climbmix (downloaded)")
    p.add_argument("--eval-version", type=positive_int, default=1)
    p.add_argument(
        "--admin", action="append", default=[], metavar="PEER_ID", help="another founding admin (you are one)"
    )
    p = swarm_sub.add_parser("invite", parents=[common, in_swarm], help="admit a member (admins only)")
    p.add_argument("peer_id", metavar="PEER_ID", help="the member's peer id, from its `arnode init`")
    p.add_argument("--admin", action="store_true", help="make it an admin too: it may invite and revoke")
    p = swarm_sub.add_parser(
        "revoke", parents=[common, in_swarm], help="remove a member for good; its records stop counting"
    )
    p.add_argument("peer_id", metavar="PEER_ID")
    p.add_argument("--reason", default="", help="a short note for the other members")
    p = swarm_sub.add_parser("show", parents=[common, in_swarm], help="print the swarm id, policy and admins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = swarm_sub.add_parser(
        "psk", parents=[common, in_swarm], help="export the private-network key for stock libp2p nodes (go, js)"
    )
    p.add_argument("-o", "--output", default="swarm.key", metavar="FILE", help="where to write it (default swarm.key)")

    p = command("start")
    p.add_argument("--bootstrap", metavar="FILE", help="multiaddrs to dial, one a line (default bootstrap_peers.txt)")
    p.add_argument("--listen", metavar="MADDR", help="listen multiaddr (default /ip4/0.0.0.0/tcp/4001)")
    p.add_argument("--swarm-key", metavar="FILE", help="join the swarm in this file (default: swarm.toml in the home)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu", "mps"), help="training device (default auto)")
    p.add_argument("--gpus", help="'all' or a list such as 0,1: one worker per GPU")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-seconds",
        type=positive_int,
        help="training seconds per run (default: 300 on a GPU; a CPU or MPS box counts tokens)",
    )
    budget.add_argument(
        "--budget-tokens", type=positive_int, help="training tokens per run (default on a CPU or MPS box: 1M)"
    )
    budget.add_argument("--max-steps", type=positive_int, help="optimiser steps per run: smoke tests only")
    p.add_argument("--dataset", help="shakespeare (embedded, default) or climbmix (downloaded)")
    p.add_argument("--llm-model", metavar="NAME", help="model name for the OpenAI-compatible endpoint")
    p.add_argument("--max-experiments", type=int, help="then stop experimenting and stay up as a peer")
    p.add_argument(
        "--role",
        choices=("researcher", "peer"),
        default="researcher",
        help="peer: gossip and sync only, no experiments",
    )
    p.add_argument("--sync-interval", type=positive_seconds, default=30.0, help="seconds between anti-entropy rounds")
    p.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")
    page = p.add_mutually_exclusive_group()
    page.add_argument(
        "--dashboard", type=int, metavar="PORT", help="serve the live page on this port (0: any free one)"
    )
    page.add_argument("--no-dashboard", action="store_true", help="serve no page")

    p = command("results", in_swarm)
    p.add_argument("--track", help="only this track (a key as shown in the output)")
    p.add_argument("--limit", type=positive_int, default=20, help="rows per track (default 20)")
    p.add_argument("--all", action="store_true", help="every record, with its outcome")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON array")
    fmt.add_argument("--tsv", action="store_true", help="tab-separated values")

    p = command("best", in_swarm)
    p.add_argument("--track", help="only this track")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("hypotheses", in_swarm)
    p.add_argument("--track", help="only this track")
    p.add_argument("--limit", type=positive_int, default=20, help="the newest N per track (default 20)")
    p.add_argument("--open", action="store_true", help="only those nobody has run yet")
    p.add_argument("--json", action="store_true", help="one JSON array, answers in full")

    p = command("findings", in_swarm)
    p.add_argument("--track", help="only this track")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("export", in_swarm)
    p.add_argument("--tsv", action="store_true", required=True, help="tab-separated values (the only format)")

    p = command("plot", in_swarm)
    p.add_argument("-o", "--output", default="progress.png", help="the PNG to write (default progress.png)")

    for name in ("status", "peers"):
        p = command(name)
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("train")
    p.add_argument(
        "--diff",
        type=json_object,
        default={},
        metavar="JSON",
        help="config changes against the default, e.g. '{\"depth\": 6}'",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-seconds", type=positive_int, metavar="N", help="training seconds (default 300 on a GPU)"
    )
    budget.add_argument(
        "--budget-tokens", type=positive_int, metavar="N", help="training tokens (default 1M on a CPU or MPS)"
    )
    budget.add_argument(
        "--max-steps", type=positive_int, metavar="N", help="optimiser steps (tests and smoke checks only)"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu", "mps"), help="default: auto")
    p.add_argument("--dataset", default="shakespeare", help="shakespeare (embedded) or climbmix (downloaded)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


USER_ERRORS = (NodeError, ProtocolError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # a bare `arnode`: what it can do, not an error line
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    args.home = getattr(args, "home", None)
    args.debug = getattr(args, "debug", False)
    home = Home.locate(args.home)
    name = args.command + (f" {args.swarm_command}" if args.command == "swarm" else "")
    module, function = COMMANDS[name].split(":")
    try:
        run = getattr(importlib.import_module(f"node.commands.{module}"), function)
        return run(args, home)
    except (*USER_ERRORS, BaseExceptionGroup) as err:
        # errors raised inside the daemon's nursery arrive wrapped in exception groups
        cause = _user_error(err)
        if cause is None or args.debug:
            raise
        print(f"arnode: error: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _user_error(err: BaseException) -> BaseException | None:
    """The error a user can act on inside ``err``, unwrapping exception groups."""
    if isinstance(err, USER_ERRORS):
        return err
    if isinstance(err, BaseExceptionGroup):
        return next((found for inner in err.exceptions if (found := _user_error(inner))), None)
    return None


if __name__ == "__main__":
    sys.exit(main())
