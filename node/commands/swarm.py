"""`arnode swarm ...`: make, show or share a swarm file; invite or revoke members."""

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from node.clock import now_ms
from node.errors import NodeError
from node.home import Home
from node.keyfile import load_or_create_identity
from node.store.ledger import Ledger
from node.swarmfile import create_swarm_file, load_swarm_file, swarm_of, write_secret_file
from protocol.acceptance import UBPB
from protocol.policy import NEW_SWARM_NOISE, Policy
from protocol.records import sign
from protocol.roster import Roster, build_roster

SHOW_WIDTH = 18  # the column where `swarm show` starts a value


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
        if name != "admins":  # shown with the roster below, one a line
            print(f"  {name.removesuffix('_ms').removesuffix('_ubpb'):<{SHOW_WIDTH}}{_shown(name, value)}")
    roster = _roster(home, policy)
    _print_list(
        "admins",
        sorted(roster.admins if roster else policy.admins)
        or ["none: an open swarm, every holder of its key is a member"],
    )
    if roster is None:
        print(f"  {'members':<{SHOW_WIDTH}}not known here: this home belongs to another swarm")
    elif not roster.open:
        _print_list("members", sorted(roster.members - roster.admins) or ["none but the admins yet"])
        if roster.revoked:
            _print_list("revoked", sorted(roster.revoked))
    return 0


def _shown(name: str, value: object) -> object:
    """A policy value as a person reads it: a date for a time, bits per byte for micro-bits."""
    if name == "created_ms":
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value / 1000)) if value else "not recorded"
    if name.endswith("_ubpb"):
        return f"{value / UBPB:.6f} bpb"
    return value


def _print_list(title: str, items: list[str]) -> None:
    for number, item in enumerate(items):
        print(f"  {title if number == 0 else '':<{SHOW_WIDTH}}{item}")


def _roster(home: Home, policy: Policy) -> Roster | None:
    """The admins and members this home's ledger knows of; None when the home belongs to another swarm."""
    if not home.swarm_file.exists() or load_swarm_file(home.swarm_file)[1] != policy:
        return None
    if not home.ledger_file.exists():
        return build_roster(policy.admins, [])
    with Ledger.open(home.ledger_file, policy, read_only=True) as ledger:
        return ledger.roster


def invite(args: argparse.Namespace, home: Home) -> int:
    body = {"member": args.peer_id, "admin": args.admin}
    return _sign_roster_record(args, home, "membership", body, "as an admin" if args.admin else "as a member")


def revoke(args: argparse.Namespace, home: Home) -> int:
    return _sign_roster_record(args, home, "revocation", {"member": args.peer_id, "reason": args.reason}, "revoked")


def _sign_roster_record(args: argparse.Namespace, home: Home, kind: str, body: dict, done: str) -> int:
    """Sign a roster record as this home's identity and hand it to the running daemon, else to the ledger."""
    _, policy, path = swarm_of(home, args.swarm_key)
    if not policy.admins:
        raise NodeError(f"swarm file {path} predates member rosters (it names no admins); make one with admins"
                        " with `arnode swarm new-key` and share it again")  # fmt: skip
    from node.control import ask_daemon, daemon_answers  # trio: only the commands that sign pay for it

    identity = load_or_create_identity(home.identity_file)
    record = sign(identity, kind, body, now_ms())
    if daemon_answers(home.control_socket):
        ask_daemon(home.control_socket, "publish_roster", {"record": record.raw.hex()})
        where = "the running node is spreading it"
    else:
        with Ledger.open(home.ledger_file, policy) as ledger:
            ledger.gate().add_record(record)  # ours, just signed: decided by the gate, not verified again
        where = "stored in the ledger; it spreads when this node next runs"
    print(f"{body['member']}: {done} ({kind} {record.hex_id[:12]}; {where})")
    return 0


def psk(args: argparse.Namespace, home: Home) -> int:
    """Write the swarm's private-network key in the standard libp2p key file, for stock libp2p nodes."""
    from node.net import pnet  # libp2p: only the command that needs the network's key pays for it

    swarm_key, policy, _path = swarm_of(home, args.swarm_key)
    output = Path(args.output)
    write_secret_file(output, pnet.key_file(pnet.network_key(swarm_key)), "key file")
    print(f"wrote {output} (mode 0600): swarm {policy.swarm_id}'s private-network key, libp2p's standard format")
    print("any libp2p node with it can connect (go, js, rust); share it only with the members of this swarm")
    return 0
