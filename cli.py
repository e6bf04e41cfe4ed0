"""The ``arnode`` command. Each subcommand is one function; all take ``--home``."""

import argparse
import json
import sys
from collections.abc import Callable

from node.errors import NodeError
from node.home import Home
from node.keyfile import load_or_create_identity
from protocol.errors import ProtocolError

Command = Callable[[argparse.Namespace, Home], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(function: Command) -> Command:
        COMMANDS[name] = function
        return function

    return register


@command("init")
def init(args: argparse.Namespace, home: Home) -> int:
    home.ensure()
    identity = load_or_create_identity(home.identity_file)
    if args.json:
        print(json.dumps({"peer_id": identity.peer_id}))
    else:
        print(f"peer id: {identity.peer_id}")
        print(f"home:    {home.config_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand must survive the subcommand's parser
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", default=argparse.SUPPRESS, metavar="DIR", help="keep all files under DIR (env ARNODE_HOME)"
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = argparse.ArgumentParser(prog="arnode", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", parents=[common], help="create this node's identity and files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.home = getattr(args, "home", None)
    args.debug = getattr(args, "debug", False)
    home = Home.locate(args.home)
    try:
        return COMMANDS[args.command](args, home)
    except (NodeError, ProtocolError) as err:
        if args.debug:
            raise
        print(f"arnode: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
