"""`arnode status` and `arnode peers`: what the running daemon answers on its control socket."""

import argparse
from typing import Any

from node import report
from node.control import ask_daemon
from node.home import Home
from node.research.run_progress import progress_words, text_bar


def _ask(args: argparse.Namespace, home: Home, request: str) -> Any | None:
    """The running daemon's answer; printed and None with --json, else for the caller to show."""
    data = ask_daemon(home.control_socket, request)
    if args.json:
        print(report.dumps(data))
        return None
    return data


def status(args: argparse.Namespace, home: Home) -> int:
    data = _ask(args, home, "status")
    if data is None:
        return 0
    print(f"node   {data['peer_id']}  up {data['uptime_s']} s")
    print(f"swarm  {data['swarm']}  track {data['track']}")
    print(f"peers  {data['peers']}  records {data['records']}")
    print(f"best   {report.best_in_words(data['best'])}")
    for worker in data["workers"]:
        current = worker["current"]
        doing = f"{current['kind']} {current['config'][:10]}" if current else worker["idle_reason"] or "choosing"
        print(f"worker {worker['name']}: {worker['experiments']} experiments, now: {doing}")
        if current and "phase" in current:  # its progress; absent while the finished run is being recorded
            print(f"       {text_bar(current['fraction'])} {progress_words(current)}")
    return 0


def peers(args: argparse.Namespace, home: Home) -> int:
    data = _ask(args, home, "peers")
    if data == []:
        print("no peers connected")
    elif data:
        for peer in data:
            print(f"{peer['id']}  {' '.join(peer.get('addrs', []))}")
    return 0
