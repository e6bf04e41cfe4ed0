"""`arnode swarm ...`: make or inspect a swarm file; and which swarm a home belongs to."""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from node.errors import NodeError
from node.home import Home
from node.swarmfile import create_swarm_file, load_swarm_file, write_swarm_file
from protocol.acceptance import UBPB
from protocol.policy import Policy


def new_key(args: argparse.Namespace, home: Home) -> int:
    policy = Policy(
        name=args.name,
        min_runs=args.min_runs,
        min_authors=args.min_authors,
        sigma_floor_ubpb=round(args.sigma_floor * UBPB),
        budget_kind=args.budget_kind,
        budget=args.budget,
        dataset=args.dataset,
        eval_version=args.eval_version,
    )
    path = Path(args.output) if args.output else home.swarm_file
    create_swarm_file(path, policy)
    print(f"wrote {path} (mode 0600): swarm {policy.swarm_id}")
    print("share it, with your multiaddr from `arnode init`, only with the members of this swarm")
    return 0


def show(args: argparse.Namespace, home: Home) -> int:
    path = Path(args.swarm_key) if args.swarm_key else home.swarm_file
    _, policy = load_swarm_file(path)
    if args.json:
        print(json.dumps({"swarm_id": policy.swarm_id, "topic": policy.topic, "file": str(path), **asdict(policy)}))
        return 0
    print(f"swarm {policy.swarm_id} ({path})")
    for name, value in asdict(policy).items():
        print(f"  {name:<18}{value}")
    return 0


def swarm_of(args: argparse.Namespace, home: Home) -> tuple[bytes, Policy, Path]:
    """The swarm this home belongs to: --swarm-key, else the home's swarm file (NodeError if none)."""
    path = Path(args.swarm_key) if getattr(args, "swarm_key", None) else home.swarm_file
    if not path.exists() and not getattr(args, "swarm_key", None):
        raise NodeError(f"this home has no swarm yet ({path}); run `arnode start` or pass --swarm-key FILE")
    psk, policy = load_swarm_file(path)
    return psk, policy, path


def adopt_swarm(home: Home, psk: bytes, policy: Policy, path: Path) -> None:
    """Keep a copy of a joined swarm's file in the home, so later commands know the swarm."""
    if not home.swarm_file.exists():
        write_swarm_file(home.swarm_file, psk, policy)
    elif load_swarm_file(home.swarm_file) != (psk, policy):
        raise NodeError(
            f"this home belongs to the swarm in {home.swarm_file}, not the one in {path}; use another --home"
        )
