"""`arnode swarm ...`: make or inspect a swarm file; and which swarm a home belongs to."""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from node.clock import now_ms
from node.control import ask_daemon, daemon_answers
from node.errors import NodeError
from node.home import Home
from node.keyfile import load_or_create_identity
from node.store.ledger import Ledger
from node.swarmfile import create_swarm_file, load_swarm_file, write_swarm_file
from protocol.acceptance import UBPB
from protocol.policy import NEW_SWARM_NOISE, Policy
from protocol.records import sign


def new_key(args: argparse.Namespace, home: Home) -> int:
    home.ensure()
    founder = load_or_create_identity(home.identity_file)
    policy = Policy(
        name=args.name,
        min_runs=args.min_runs,
        min_authors=args.min_authors,
        sigma_floor_ubpb=round(args.sigma_floor * UBPB),
        budget_kind=args.budget_kind,
        budget=args.budget,
        dataset=args.dataset,
        eval_version=args.eval_version,
        admins=tuple(dict.fromkeys([founder.peer_id, *args.admin])),
        created_ms=now_ms(),
        **NEW_SWARM_NOISE,
    )
    path = Path(args.output) if args.output else home.swarm_file
    create_swarm_file(path, policy)
    print(f"wrote {path} (mode 0600): swarm {policy.swarm_id}, admins {', '.join(policy.admins)}")
    print("admit members with `arnode swarm invite PEER_ID`; their peer id comes from their `arnode init`")
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


def invite(args: argparse.Namespace, home: Home) -> int:
    body = {"member": args.peer_id, "admin": args.admin}
    return _sign_roster_record(args, home, "membership", body, "as an admin" if args.admin else "as a member")


def revoke(args: argparse.Namespace, home: Home) -> int:
    return _sign_roster_record(args, home, "revocation", {"member": args.peer_id, "reason": args.reason}, "revoked")


def _sign_roster_record(args: argparse.Namespace, home: Home, kind: str, body: dict, done: str) -> int:
    """Sign a roster record as this home's identity and hand it to the running daemon, else to the ledger."""
    _, policy, path = swarm_of(args, home)
    if not policy.admins:
        raise NodeError(f"swarm file {path} predates member rosters (it names no admins); make one with admins"
                        " with `arnode swarm new-key` and share it again")  # fmt: skip
    identity = load_or_create_identity(home.identity_file)
    record = sign(identity, kind, body, now_ms())
    if daemon_answers(home.control_socket):
        ask_daemon(home.control_socket, "publish_roster", {"record": record.raw.hex()})
        where = "the running node is spreading it"
    else:
        with Ledger.open(home.ledger_file, policy) as ledger:
            ledger.add(record.raw)
        where = "stored in the ledger; it spreads when this node next runs"
    print(f"{body['member']}: {done} ({kind} {record.hex_id[:12]}; {where})")
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
