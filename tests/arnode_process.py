"""Run the real `arnode` command in subprocesses on temporary homes, for the end-to-end tests."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.node.net.swarm_process import wait_until

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def arnode(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """One `arnode` command to completion; stdout and stderr as text."""
    argv = [sys.executable, str(ROOT / "cli.py"), "--home", str(home), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env(env), cwd=home.parent)


def arnode_json(home: Path, *args: str) -> Any:
    done = arnode(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Daemon:
    """`arnode start` in the background, its output in ``home/daemon.out``."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        # each test node serves its page on a free port, never on the default one a person may be using
        argv = [
            sys.executable,
            str(ROOT / "cli.py"),
            "--home",
            str(home),
            "start",
            "--plain",
            "--dashboard",
            "0",
            *args,
        ]
        with open(home / "daemon.out", "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env(env), cwd=home.parent)

    def status(self) -> dict[str, Any] | None:
        """The daemon's status, or None while it does not answer yet."""
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}: {self.output()[-3000:]}")
        done = arnode(self.home, "status", "--json", timeout=30)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        return wait_until(self.status, timeout, interval=0.5, what=f"daemon in {self.home} answering")

    def experiments(self) -> int:
        status = self.status()
        return sum(worker["experiments"] for worker in status["workers"]) if status else 0

    def stop(self, timeout: float = 60) -> int:
        """SIGINT, as Ctrl-C would send; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def output(self) -> str:
        return (self.home / "daemon.out").read_text(errors="replace")


def trainer_pids(home: Path) -> list[int]:
    """Trainer processes started by the node living in ``home`` (their spec lies under it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"trainer" in argv and any(str(home).encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ARNODE_"))}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **(extra or {})}
