"""`arnode init`, `start` and `train`: the node itself, and one experiment run locally.

`start` checks every flag and file (the listen address, the swarm file, the bootstrap files, the
config, whether another daemon holds the home) before it loads the daemon stack or opens the
network: a mistake is told in one line at once, and a refused start founds no swarm.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import multiaddr

import trainer
from node.clock import now_ms
from node.errors import NodeError
from node.home import Home
from node.keyfile import load_or_create_identity
from node.net.addresses import shareable_addrs
from node.net.bootstrap import bootstrap_addrs
from node.swarmfile import adopt_swarm, create_swarm_file, swarm_of
from protocol.config import apply
from protocol.identity import Identity
from protocol.policy import NEW_SWARM_NOISE, Policy
from trainer.hardware import resolve_device
from trainer.spec import SpecError, build_spec, dataset, default_config_for, track_for

if TYPE_CHECKING:
    from node.settings import Settings

# The budget a run gets when no flag and no swarm file says otherwise. A GPU trains for 300 s of
# wall clock, as autoresearch does. A CPU or MPS box trains for a number of tokens instead: its
# wall clock measures whatever else the machine is doing (on a busy 2-core box the same config
# scattered 37x wider than on a GPU), while a token budget measures only the config and compares
# every CPU box with every other. 1M tokens (245 steps of the small profile) take about five
# minutes at 3.3k tokens/s and 7-15 minutes on a busy 2-core cloud box (the figures: README, "A solo
# run"). Changing this puts new solo swarms on another track; existing ones keep theirs.
GPU_BUDGET = ("seconds", 300)
CPU_BUDGET = ("tokens", 1_000_000)


def default_budget(device: str) -> tuple[str, int]:
    return GPU_BUDGET if resolve_device(device) == "cuda" else CPU_BUDGET


def _prepare(home: Home) -> tuple[Identity, "Settings"]:
    """What a node needs, created on first use and never overwritten: identity, config, program.md."""
    # numpy comes with these two (the work weights, the agent): `start` checks its flags first
    from node.research.agent import load_program
    from node.settings import load_settings, write_default_settings

    home.ensure()
    identity = load_or_create_identity(home.identity_file)
    write_default_settings(home.config_file)
    load_program(home.program_file)
    return identity, load_settings(home.config_file)


def init(args: argparse.Namespace, home: Home) -> int:
    identity, settings = _prepare(home)
    addrs = [f"{addr}/p2p/{identity.peer_id}" for addr in shareable_addrs(settings.listen)]
    if args.json:
        print(json.dumps({"peer_id": identity.peer_id, "multiaddrs": addrs}))
        return 0
    print(f"peer id: {identity.peer_id}")
    print(f"home:    {home.config_dir}")
    print("to join a swarm, send your peer id to one of its admins, who runs `arnode swarm invite <peer id>`")
    print("peers put one of these in their bootstrap_peers.txt:")
    for addr in addrs:
        print(f"  {addr}")
    return 0


@dataclass(frozen=True)
class StartChecks:
    """What `start` checked and settled before it loads the daemon stack."""

    identity: Identity
    settings: "Settings"
    joined: tuple[bytes, Policy, Path] | None  # the swarm file given or in the home; None: found one
    listen: str
    bootstrap: list[str]
    device: str
    dashboard_port: int | None


def start(args: argparse.Namespace, home: Home) -> int:
    checked = _check_start(args, home)
    with home.hold():
        if checked.joined:
            psk, policy, path = checked.joined
            adopt_swarm(home, psk, policy, path)
        else:
            psk, policy = _found_swarm(args, home, checked.device, checked.identity)
        if not policy.admins:
            print(
                "arnode: warning: this swarm file names no admins (it predates member rosters): every holder of its"
                " key counts as a member; make a new one with `arnode swarm new-key` to admit members one by one",
                file=sys.stderr,
            )
        if policy.dataset == "climbmix":
            _fetch_validation_shard(home)
        _serve(args, home, checked, psk, policy)
    return 0


def _check_start(args: argparse.Namespace, home: Home) -> StartChecks:
    """Every flag and file `start` uses, checked; NodeError at the first mistake, before the network."""
    # the flags and the files they name first, told at once (the config and numpy are not loaded yet)
    listen = _listen_addr(args.listen) if args.listen else None
    if args.dataset:
        _known_dataset(args.dataset)
    named = bootstrap_addrs(args.bootstrap, "", home.config_dir) if args.bootstrap else None
    joined = _joined_swarm(args, home)
    identity, settings = _prepare(home)
    bootstrap, warnings = named or bootstrap_addrs(None, settings.bootstrap_file, home.config_dir)
    for warning in warnings:
        print(f"arnode: warning: {warning}", file=sys.stderr)
    device = args.device or settings.device
    if device == "cuda" and resolve_device("auto") != "cuda":
        raise NodeError("--device cuda was asked for but no NVIDIA GPU is visible; use --device cpu or auto")
    return StartChecks(
        identity=identity,
        settings=settings,
        joined=joined,
        listen=listen or _listen_addr(settings.listen),
        bootstrap=bootstrap,
        device=resolve_device(device),  # once, here: the track, the workers and every trainer get the same device
        dashboard_port=None if args.no_dashboard else _dashboard_port(args, settings),
    )


def _serve(args: argparse.Namespace, home: Home, checked: StartChecks, psk: bytes, policy: Policy) -> None:
    """Run the daemon until it is stopped."""
    # the daemon stack (trio, libp2p, the LLM client) loads here, once every check has passed
    import trio

    from node.daemon import Daemon, DaemonOptions, workers_for
    from node.live import run_with_view, setup_logging
    from node.store.ledger import Ledger

    settings = checked.settings
    options = DaemonOptions(
        listen=checked.listen,
        bootstrap=checked.bootstrap,
        device=checked.device,
        workers=[] if args.role == "peer" else workers_for(checked.device, args.gpus or settings.gpus),
        max_experiments=args.max_experiments,
        llm_model=args.llm_model,
        sync_interval_s=args.sync_interval,
        dashboard=None if checked.dashboard_port is None else (settings.dashboard.host, checked.dashboard_port),
    )
    live = sys.stderr.isatty() and not args.plain
    setup_logging(home.log_file, args.debug, live)
    with Ledger.open(home.ledger_file, policy) as ledger:
        daemon = Daemon(home, checked.identity, psk, policy, settings, options, ledger)
        trio.run(run_with_view if live else Daemon.run, daemon)


def _known_dataset(name: str) -> None:
    try:
        dataset(name)
    except SpecError as err:
        raise NodeError(str(err)) from None


def _listen_addr(text: str) -> str:
    try:
        multiaddr.Multiaddr(text)
    except ValueError as err:
        raise NodeError(f"listen address {text!r} is not a multiaddr: {err}") from None
    return text


def _dashboard_port(args: argparse.Namespace, settings: "Settings") -> int:
    port = settings.dashboard.port if args.dashboard is None else args.dashboard
    if not 0 <= port <= 65535:
        raise NodeError(f"dashboard port {port} is not a port (0-65535; 0 picks a free one)")
    return port


def _joined_swarm(args: argparse.Namespace, home: Home) -> tuple[bytes, Policy, Path] | None:
    """The swarm in --swarm-key or the home, checked against the budget flags; None when there is none yet."""
    if not args.swarm_key and not home.swarm_file.exists():
        return None
    psk, policy, path = swarm_of(home, args.swarm_key)
    budget_kind, budget = _budget(args)
    asked = (budget_kind or policy.budget_kind, budget or policy.budget, args.dataset or policy.dataset)
    if asked != (policy.budget_kind, policy.budget, policy.dataset):
        raise NodeError(
            f"swarm file {path} fixes runs at {policy.budget} {policy.budget_kind} on {policy.dataset}; "
            "drop the budget/dataset flags, or use another --home for other runs"
        )
    return psk, policy, path


def _found_swarm(args: argparse.Namespace, home: Home, device: str, founder: Identity) -> tuple[bytes, Policy]:
    """A solo swarm from the flags, saved in the home."""
    budget_kind, budget = _budget(args)
    if budget_kind is None:
        budget_kind, budget = default_budget(device)
    policy = Policy(
        name="solo",
        min_authors=1,
        budget_kind=budget_kind,
        budget=budget,
        dataset=args.dataset or "shakespeare",
        admins=(founder.peer_id,),  # a founder is its own admin: zero-config
        created_ms=now_ms(),
        **NEW_SWARM_NOISE,
    )
    psk = create_swarm_file(home.swarm_file, policy)
    print(
        f"founded solo swarm {policy.swarm_id} ({policy.budget} {policy.budget_kind} a run) in {home.swarm_file};"
        " share that file to invite others"
    )
    return psk, policy


def _fetch_validation_shard(home: Home) -> None:
    """Offline, say so once here rather than in every experiment's crash record."""
    from trainer import climbmix  # pyarrow: only a climbmix swarm pays for it

    print("checking the climbmix validation shard (downloaded once into the cache)...", file=sys.stderr)
    try:
        climbmix.download(climbmix.VAL_SHARD, home.data_cache / "climbmix")
    except climbmix.DataError as err:
        raise NodeError(f"climbmix data: {err}") from None


def _budget(args: argparse.Namespace) -> tuple[str | None, int | None]:
    """The budget the flags ask for, (None, None) when none does."""
    for kind, value in (("seconds", args.budget_seconds), ("tokens", args.budget_tokens), ("steps", args.max_steps)):
        if value is not None:  # positive: the parser checked
            return kind, value
    return None, None


def train(args: argparse.Namespace, home: Home) -> int:
    """Run one experiment locally: the device's default config plus ``--diff``, in a trainer subprocess."""
    device = resolve_device(args.device)
    config = apply(default_config_for(device), args.diff, strict=False)  # a JSON object: the parser checked
    budget_kind, budget = _budget(args)
    if budget_kind is None:
        budget_kind, budget = default_budget(device)
    home.ensure()
    with tempfile.TemporaryDirectory(prefix="arnode-train-") as scratch:
        try:
            track = track_for(device, args.dataset, budget_kind, budget)
            spec = build_spec(config, track, device, home.data_cache, home.cache_dir)
        except SpecError as err:
            raise NodeError(str(err)) from None
        spec_file, result_file = Path(scratch) / "spec.json", Path(scratch) / "result.json"
        spec_file.write_text(json.dumps(spec))
        package_root = str(Path(trainer.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "trainer", "--spec", str(spec_file), "--out", str(result_file)]
        # with --json the trainer's log goes to stderr, so stdout carries only the result
        done = subprocess.run(command, env=env, stdout=sys.stderr if args.json else None)
        if done.returncode != 0 or not result_file.exists():
            raise NodeError(f"the trainer failed with exit code {done.returncode}")
        result = json.loads(result_file.read_text())
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["outcome"] == "ok" else 1
