"""The ``arnode`` command. Each subcommand is one function; all take ``--home``."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import multiaddr
import trio
from rich.console import Console
from rich.table import Table

import trainer
from node import report
from node.clock import now_ms
from node.control import ask_daemon, daemon_answers
from node.daemon import Daemon, DaemonOptions, bootstrap_sources, workers_for
from node.errors import NodeError
from node.home import Home
from node.keyfile import load_or_create_identity
from node.live import run_with_view, setup_logging
from node.net.addresses import shareable_addrs
from node.net.bootstrap import parse_bootstrap_file
from node.research.agent import load_program
from node.settings import Settings, load_settings, write_default_settings
from node.store.ledger import Ledger
from node.swarmfile import create_swarm_file, load_swarm_file, write_swarm_file
from protocol.acceptance import UBPB
from protocol.config import apply
from protocol.errors import ProtocolError
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import sign
from protocol.track import BUDGET_UNITS
from trainer import climbmix
from trainer.hardware import resolve_device
from trainer.spec import SpecError, build_spec, default_config_for, track_for

Command = Callable[[argparse.Namespace, Home], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(function: Command) -> Command:
        COMMANDS[name] = function
        return function

    return register


def _prepare(home: Home) -> tuple[Identity, Settings]:
    """What a node needs, created on first use and never overwritten: identity, config, program.md."""
    home.ensure()
    identity = load_or_create_identity(home.identity_file)
    write_default_settings(home.config_file)
    load_program(home.program_file)
    return identity, load_settings(home.config_file)


@command("init")
def init(args: argparse.Namespace, home: Home) -> int:
    identity, settings = _prepare(home)
    listen = settings.listen
    addrs = [f"{addr}/p2p/{identity.peer_id}" for addr in shareable_addrs(listen)]
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


@command("swarm new-key")
def swarm_new_key(args: argparse.Namespace, home: Home) -> int:
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
    )
    path = Path(args.output) if args.output else home.swarm_file
    create_swarm_file(path, policy)
    print(f"wrote {path} (mode 0600): swarm {policy.swarm_id}, admins {', '.join(policy.admins)}")
    print("admit members with `arnode swarm invite PEER_ID`; their peer id comes from their `arnode init`")
    print("share it, with your multiaddr from `arnode init`, only with the members of this swarm")
    return 0


@command("swarm show")
def swarm_show(args: argparse.Namespace, home: Home) -> int:
    path = Path(args.swarm_key) if args.swarm_key else home.swarm_file
    _, policy = load_swarm_file(path)
    if args.json:
        print(json.dumps({"swarm_id": policy.swarm_id, "topic": policy.topic, "file": str(path), **asdict(policy)}))
        return 0
    print(f"swarm {policy.swarm_id} ({path})")
    for name, value in asdict(policy).items():
        print(f"  {name:<18}{value}")
    return 0


def _swarm(args: argparse.Namespace, home: Home) -> tuple[bytes, Policy, Path]:
    """The swarm this home belongs to: --swarm-key, else the home's swarm file (NodeError if none)."""
    path = Path(args.swarm_key) if getattr(args, "swarm_key", None) else home.swarm_file
    if not path.exists() and not getattr(args, "swarm_key", None):
        raise NodeError(f"this home has no swarm yet ({path}); run `arnode start` or pass --swarm-key FILE")
    psk, policy = load_swarm_file(path)
    return psk, policy, path


def _open_ledger(args: argparse.Namespace, home: Home) -> Ledger:
    _, policy, _ = _swarm(args, home)
    if not home.ledger_file.exists():
        raise NodeError(f"no ledger yet at {home.ledger_file}; run `arnode start` first")
    return Ledger.open(home.ledger_file, policy)


def _views(ledger: Ledger, track: str | None) -> dict:
    views = ledger.assess()
    if track is not None:
        if track not in views:
            known = ", ".join(views) or "none yet"
            raise NodeError(f"no results on track {track!r}; tracks in the ledger: {known}")
        views = {track: views[track]}
    return views


@command("swarm invite")
def swarm_invite(args: argparse.Namespace, home: Home) -> int:
    body = {"member": args.peer_id, "admin": args.admin}
    return _sign_roster_record(args, home, "membership", body, "as an admin" if args.admin else "as a member")


@command("swarm revoke")
def swarm_revoke(args: argparse.Namespace, home: Home) -> int:
    return _sign_roster_record(args, home, "revocation", {"member": args.peer_id, "reason": args.reason}, "revoked")


def _sign_roster_record(args: argparse.Namespace, home: Home, kind: str, body: dict, done: str) -> int:
    """Sign a roster record as this home's identity and hand it to the running daemon, else to the ledger."""
    _, policy, path = _swarm(args, home)
    if not policy.admins:
        raise NodeError(f"swarm file {path} predates member rosters (it names no admins); make one with admins"
                        " with `arnode swarm new-key` and share it again")  # fmt: skip
    identity = load_or_create_identity(home.identity_file)
    record = sign(identity, kind, body, now_ms())
    if daemon_answers(home.control_socket):
        ask_daemon(home.control_socket, "publish_roster", {"record": record.raw.hex()})
        where = "the running node is spreading it"
    else:
        ledger = Ledger.open(home.ledger_file, policy)
        try:
            ledger.add(record.raw)
        finally:
            ledger.close()
        where = "stored in the ledger; it spreads when this node next runs"
    print(f"{body['member']}: {done} ({kind} {record.hex_id[:12]}; {where})")
    return 0


@command("start")
def start(args: argparse.Namespace, home: Home) -> int:
    identity, settings = _prepare(home)
    listen = args.listen or settings.listen
    try:
        multiaddr.Multiaddr(listen)
    except ValueError as err:
        raise NodeError(f"listen address {listen!r} is not a multiaddr: {err}") from None
    psk, policy = _join_or_found_swarm(args, home, identity)
    if not policy.admins:
        print(
            "arnode: warning: this swarm file names no admins (it predates member rosters): every holder of its key"
            " counts as a member; make a new one with `arnode swarm new-key` to admit members one by one",
            file=sys.stderr,
        )
    if policy.dataset == "climbmix":
        _fetch_validation_shard(home)
    device = args.device or settings.device
    if device == "cuda" and resolve_device("auto") != "cuda":
        raise NodeError("--device cuda was asked for but no NVIDIA GPU is visible; use --device cpu or auto")
    device = resolve_device(device)  # once, here: the track, the workers and every trainer get the same device
    bootstrap: list[str] = []
    for path in bootstrap_sources(args.bootstrap, settings, home):
        addrs, warnings = parse_bootstrap_file(path)
        bootstrap += addrs
        for warning in warnings:
            print(f"arnode: warning: {warning}", file=sys.stderr)
    options = DaemonOptions(
        listen=listen,
        bootstrap=bootstrap,
        device=device,
        workers=[] if args.role == "peer" else workers_for(device, args.gpus or settings.gpus),
        max_experiments=args.max_experiments,
        llm_model=args.llm_model,
        sync_interval_s=args.sync_interval,
    )
    live = sys.stderr.isatty() and not args.plain
    setup_logging(home.log_file, args.debug, live)
    with Ledger.open(home.ledger_file, policy) as ledger:
        daemon = Daemon(home, identity, psk, policy, settings, options, ledger)
        trio.run(run_with_view if live else Daemon.run, daemon)
    return 0


def _join_or_found_swarm(args: argparse.Namespace, home: Home, founder: Identity) -> tuple[bytes, Policy]:
    """The swarm in --swarm-key or the home; with none, found a solo swarm from the flags and save it."""
    budget_kind, budget = _budget(args)
    if args.swarm_key or home.swarm_file.exists():
        psk, policy, path = _swarm(args, home)
        asked = (budget_kind or policy.budget_kind, budget or policy.budget, args.dataset or policy.dataset)
        if asked != (policy.budget_kind, policy.budget, policy.dataset):
            raise NodeError(
                f"swarm file {path} fixes runs at {policy.budget} {policy.budget_kind} on {policy.dataset}; "
                "drop the budget/dataset flags, or use another --home for other runs"
            )
        _adopt_swarm(home, psk, policy, path)
        return psk, policy
    policy = Policy(
        name="solo",
        min_authors=1,
        budget_kind=budget_kind or "seconds",
        budget=budget or 300,
        dataset=args.dataset or "shakespeare",
        admins=(founder.peer_id,),  # a founder is its own admin: zero-config
        created_ms=now_ms(),
    )
    psk = create_swarm_file(home.swarm_file, policy)
    print(f"founded solo swarm {policy.swarm_id} in {home.swarm_file}; share that file to invite others")
    return psk, policy


def _fetch_validation_shard(home: Home) -> None:
    """Offline, say so once here rather than in every experiment's crash record."""
    print("checking the climbmix validation shard (downloaded once into the cache)...", file=sys.stderr)
    try:
        climbmix.download(climbmix.VAL_SHARD, home.data_cache / "climbmix")
    except climbmix.DataError as err:
        raise NodeError(f"climbmix data: {err}") from None


def _adopt_swarm(home: Home, psk: bytes, policy: Policy, path: Path) -> None:
    """Keep a copy of a joined swarm's file in the home, so later commands know the swarm."""
    if not home.swarm_file.exists():
        write_swarm_file(home.swarm_file, psk, policy)
    elif load_swarm_file(home.swarm_file) != (psk, policy):
        raise NodeError(
            f"this home belongs to the swarm in {home.swarm_file}, not the one in {path}; use another --home"
        )


def _budget(args: argparse.Namespace) -> tuple[str | None, int | None]:
    for kind, value in (("seconds", args.budget_seconds), ("tokens", args.budget_tokens), ("steps", args.max_steps)):
        if value is not None:
            if value <= 0:
                raise NodeError(f"the {kind} budget must be positive, not {value}")
            return kind, value
    return None, None


@command("results")
def results(args: argparse.Namespace, home: Home) -> int:
    ledger = _open_ledger(args, home)
    try:
        if args.all:
            records = [r for r in ledger.records() if r.track and (args.track is None or r.track.key == args.track)]
            rows = [report.record_row(r) for r in records]
            columns = ("ts_ms", "id", "kind", "outcome", "val_bpb", "test_bpb", "config_hash", "author", "hypothesis")
            return _print_rows(args, rows, columns)
        rows = []
        for key, view in _views(ledger, args.track).items():
            holdout = report.holdout_scores(ledger, key, (s.config for s in view.leaderboard[: args.limit]))
            board = report.leaderboard_rows(view, ledger.resolve_config, args.limit, holdout)
            rows += [{"track": key, **row} for row in board]
        columns = ("rank", "config_hash", "val_bpb", "test_bpb", "runs", "authors", "verified", "diff")
        return _print_rows(args, rows, columns)
    finally:
        ledger.close()


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
        Console().print(table)
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


@command("best")
def best(args: argparse.Namespace, home: Home) -> int:
    ledger = _open_ledger(args, home)
    try:
        summaries = []
        for key, view in _views(ledger, args.track).items():
            configs = [s.config for s in view.leaderboard if s.is_default or s is view.best]
            holdout = report.holdout_scores(ledger, key, configs)
            summaries.append(report.best_summary(view, ledger.resolve_config, holdout))
    finally:
        ledger.close()
    summaries = [s for s in summaries if s]
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


@command("export")
def export(args: argparse.Namespace, home: Home) -> int:
    ledger = _open_ledger(args, home)
    try:
        rows = report.export_rows(ledger.records("result"), ledger.assess())
    finally:
        ledger.close()
    print("\t".join(report.TSV_HEADER))
    for row in rows:
        print("\t".join(row))
    return 0


@command("plot")
def plot(args: argparse.Namespace, home: Home) -> int:
    ledger = _open_ledger(args, home)
    try:
        tracks = report.plot_progress(list(ledger.records("result")), ledger.assess(), Path(args.output))
    finally:
        ledger.close()
    print(f"wrote {args.output} ({tracks} track{'s' if tracks != 1 else ''})")
    return 0


def _ask(args: argparse.Namespace, home: Home, request: str) -> object | None:
    """The running daemon's answer; printed and None with --json, else for the caller to show."""
    data = ask_daemon(home.control_socket, request)
    if args.json:
        print(report.dumps(data))
        return None
    return data


@command("status")
def status(args: argparse.Namespace, home: Home) -> int:
    data = _ask(args, home, "status")
    if data is None:
        return 0
    best = data["best"]
    print(f"node   {data['peer_id']}  up {data['uptime_s']} s")
    print(f"swarm  {data['swarm']}  track {data['track']}")
    print(f"peers  {data['peers']}  records {data['records']}")
    print(f"best   {best['config'][:10]} val_bpb {best['val_bpb']:.6f}" if best else "best   none verified yet")
    for worker in data["workers"]:
        current = worker["current"]
        doing = f"{current['kind']} {current['config'][:10]}" if current else worker["idle_reason"] or "choosing"
        print(f"worker {worker['name']}: {worker['experiments']} experiments, now: {doing}")
    return 0


@command("peers")
def peers(args: argparse.Namespace, home: Home) -> int:
    data = _ask(args, home, "peers")
    if data == []:
        print("no peers connected")
    elif data:
        for peer in data:
            print(f"{peer['id']}  {' '.join(peer.get('addrs', []))}")
    return 0


@command("train")
def train(args: argparse.Namespace, home: Home) -> int:
    """Run one experiment locally: the device's default config plus ``--diff``, in a trainer subprocess."""
    try:
        diff = json.loads(args.diff) if args.diff else {}
    except json.JSONDecodeError as err:
        raise NodeError(f"--diff is not JSON: {err}") from None
    device = resolve_device(args.device)
    config = apply(default_config_for(device), diff, strict=False)
    budgets = {"tokens": args.budget_tokens, "steps": args.max_steps, "seconds": args.budget_seconds}
    budget_kind, budget = next(((kind, n) for kind, n in budgets.items() if n is not None), ("seconds", 300))
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
    p = swarm_sub.add_parser("invite", parents=[common], help="admit a member (admins only)")
    p.add_argument("peer_id", metavar="PEER_ID", help="the member's peer id, from its `arnode init`")
    p.add_argument("--admin", action="store_true", help="make it an admin too: it may invite and revoke")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    p = swarm_sub.add_parser("revoke", parents=[common], help="remove a member for good; its records stop counting")
    p.add_argument("peer_id", metavar="PEER_ID")
    p.add_argument("--reason", default="", help="a short note for the other members")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    p = swarm_sub.add_parser("show", parents=[common], help="print the swarm id and policy")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("start", parents=[common], help="run the node: join the swarm and run experiments")
    p.add_argument("--bootstrap", metavar="FILE", help="multiaddrs to dial, one a line (default bootstrap_peers.txt)")
    p.add_argument("--listen", metavar="MADDR", help="listen multiaddr (default /ip4/0.0.0.0/tcp/4001)")
    p.add_argument("--swarm-key", metavar="FILE", help="join the swarm in this file (default: swarm.toml in the home)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu", "mps"), help="training device (default auto)")
    p.add_argument("--gpus", help="'all' or a list such as 0,1: one worker per GPU")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", type=int, help="training seconds per run (default 300)")
    budget.add_argument("--budget-tokens", type=int, help="training tokens per run")
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

    p = sub.add_parser("results", parents=[common], help="the leaderboard from the local ledger")
    p.add_argument("--track", help="only this track (a key as shown in the output)")
    p.add_argument("--limit", type=int, default=20, help="rows per track (default 20)")
    p.add_argument("--all", action="store_true", help="every record, with its outcome")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON array")
    fmt.add_argument("--tsv", action="store_true", help="tab-separated values")

    p = sub.add_parser("best", parents=[common], help="the current best full config and its evidence")
    p.add_argument("--track", help="only this track")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("export", parents=[common], help="autoresearch's results.tsv from the ledger")
    p.add_argument("--tsv", action="store_true", required=True, help="tab-separated values (the only format)")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")

    p = sub.add_parser("plot", parents=[common], help="val_bpb over experiments, like autoresearch's progress.png")
    p.add_argument("-o", "--output", default="progress.png", help="the PNG to write (default progress.png)")
    p.add_argument("--swarm-key", metavar="FILE", help="the swarm file (default: swarm.toml in the home)")

    for name, text in (("status", "what the running daemon is doing"), ("peers", "the running daemon's peers")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("train", parents=[common], help="run one experiment locally and print its summary")
    p.add_argument("--diff", metavar="JSON", help="config changes against the default, e.g. '{\"depth\": 6}'")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", type=int, metavar="N", help="training seconds (default 300)")
    budget.add_argument("--budget-tokens", type=int, metavar="N", help="training tokens")
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
    try:
        return COMMANDS[name](args, home)
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
