"""The ``arnode`` command: parse the command line, then import only the module the command lives in.

Each subcommand is a function ``(args, home) -> exit code`` in node/commands/ (see its map); a read
such as ``arnode results`` never loads the network, the LLM client or the trainer.
"""

import argparse
import importlib
import sys

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
    "results": "reading:results",
    "best": "reading:best",
    "hypotheses": "reading:hypotheses",
    "export": "reading:export",
    "plot": "reading:plot",
    "status": "asking:status",
    "peers": "asking:peers",
}


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand must survive the subcommand's parser
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", default=argparse.SUPPRESS, metavar="DIR", help="keep all files under DIR (env ARNODE_HOME)"
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    in_swarm = argparse.ArgumentParser(add_help=False)  # commands that read a swarm this home belongs to
    in_swarm.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    parser = argparse.ArgumentParser(prog="arnode", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", parents=[common], help="create this node's identity and files")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    swarm = sub.add_parser("swarm", parents=[common], help="make or inspect a swarm file (key and policy)")
    swarm_sub = swarm.add_subparsers(dest="swarm_command", required=True, metavar="SWARM_COMMAND")
    p = swarm_sub.add_parser("new-key", parents=[common], help="write a new swarm file: a fresh key and a policy")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: swarm.toml in the home)")
    p.add_argument("--name", default="swarm", help="a name for people; part of the swarm id")
    p.add_argument("--min-runs", type=int, default=4, help="ok runs before a config counts as verified")
    p.add_argument("--min-authors", type=int, default=2, help="distinct nodes among those runs")
    p.add_argument("--sigma-floor", type=float, default=0.002, help="least seed noise assumed, in bpb")
    p.add_argument("--budget-kind", choices=BUDGET_UNITS, default="seconds")
    p.add_argument("--budget", type=int, default=300, help="training budget per run, in the budget kind's unit")
    p.add_argument("--dataset", default="shakespeare", help="shakespeare (embedded) or climbmix (downloaded)")
    p.add_argument("--eval-version", type=int, default=1)
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
    p = swarm_sub.add_parser("show", parents=[common, in_swarm], help="print the swarm id and policy")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("start", parents=[common], help="run the node: join the swarm and run experiments")
    p.add_argument("--bootstrap", metavar="FILE", help="multiaddrs to dial, one a line (default bootstrap_peers.txt)")
    p.add_argument("--listen", metavar="MADDR", help="listen multiaddr (default /ip4/0.0.0.0/tcp/4001)")
    p.add_argument("--swarm-key", metavar="FILE", help="join the swarm in this file (default: swarm.toml in the home)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu", "mps"), help="training device (default auto)")
    p.add_argument("--gpus", help="'all' or a list such as 0,1: one worker per GPU")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-seconds",
        type=int,
        help="training seconds per run (default: 300 on a GPU; a CPU or MPS box counts tokens)",
    )
    budget.add_argument("--budget-tokens", type=int, help="training tokens per run (default on a CPU or MPS box: 3M)")
    budget.add_argument("--max-steps", type=int, help="optimiser steps per run: smoke tests only")
    p.add_argument("--dataset", help="shakespeare (embedded, default) or climbmix (downloaded)")
    p.add_argument("--llm-model", metavar="NAME", help="model name for the OpenAI-compatible endpoint")
    p.add_argument("--max-experiments", type=int, help="then stop experimenting and stay up as a peer")
    p.add_argument(
        "--role",
        choices=("researcher", "peer"),
        default="researcher",
        help="peer: gossip and sync only, no experiments",
    )
    p.add_argument("--sync-interval", type=float, default=30.0, help="seconds between anti-entropy rounds")
    p.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")
    page = p.add_mutually_exclusive_group()
    page.add_argument(
        "--dashboard", type=int, metavar="PORT", help="serve the live page on this port (0: any free one)"
    )
    page.add_argument("--no-dashboard", action="store_true", help="serve no page")

    p = sub.add_parser("results", parents=[common, in_swarm], help="the leaderboard from the local ledger")
    p.add_argument("--track", help="only this track (a key as shown in the output)")
    p.add_argument("--limit", type=int, default=20, help="rows per track (default 20)")
    p.add_argument("--all", action="store_true", help="every record, with its outcome")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON array")
    fmt.add_argument("--tsv", action="store_true", help="tab-separated values")

    p = sub.add_parser("best", parents=[common, in_swarm], help="the current best full config and its evidence")
    p.add_argument("--track", help="only this track")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "hypotheses", parents=[common, in_swarm], help="ideas published for any node to run: open or answered"
    )
    p.add_argument("--track", help="only this track")
    p.add_argument("--limit", type=int, default=20, help="the newest N per track (default 20)")
    p.add_argument("--open", action="store_true", help="only those nobody has run yet")
    p.add_argument("--json", action="store_true", help="one JSON array, answers in full")

    p = sub.add_parser("export", parents=[common, in_swarm], help="autoresearch's results.tsv from the ledger")
    p.add_argument("--tsv", action="store_true", required=True, help="tab-separated values (the only format)")

    p = sub.add_parser(
        "plot", parents=[common, in_swarm], help="val_bpb over experiments, like autoresearch's progress.png"
    )
    p.add_argument("-o", "--output", default="progress.png", help="the PNG to write (default progress.png)")

    for name, text in (("status", "what the running daemon is doing"), ("peers", "the running daemon's peers")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("train", parents=[common], help="run one experiment locally and print its summary")
    p.add_argument("--diff", metavar="JSON", help="config changes against the default, e.g. '{\"depth\": 6}'")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", type=int, metavar="N", help="training seconds (default 300 on a GPU)")
    budget.add_argument("--budget-tokens", type=int, metavar="N", help="training tokens (default 3M on a CPU or MPS)")
    budget.add_argument("--max-steps", type=int, metavar="N", help="optimiser steps (tests and smoke checks only)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu", "mps"), help="default: auto")
    p.add_argument("--dataset", default="shakespeare", help="shakespeare (embedded) or climbmix (downloaded)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


USER_ERRORS = (NodeError, ProtocolError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
