"""Where a node keeps its files: ``--home DIR`` / ``ARNODE_HOME``, else the platform's usual places."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from node.errors import NodeError

APP = "arnode"


@dataclass(frozen=True)
class Home:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @classmethod
    def locate(cls, home: str | os.PathLike | None = None) -> "Home":
        """One directory for everything when ``home`` or ARNODE_HOME is given, else platformdirs."""
        chosen = home or os.environ.get("ARNODE_HOME")
        if chosen:
            root = Path(chosen).expanduser().resolve()
            return cls(root, root, root / "cache")
        return cls(
            Path(platformdirs.user_config_dir(APP)),
            Path(platformdirs.user_data_dir(APP)),
            Path(platformdirs.user_cache_dir(APP)),
        )

    @property
    def data_cache(self) -> Path:
        """Downloaded datasets, one folder each (the trainer's data_dir)."""
        return self.cache_dir / "data"

    @property
    def identity_file(self) -> Path:
        return self.config_dir / "identity.pem"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def swarm_file(self) -> Path:
        return self.config_dir / "swarm.toml"

    @property
    def program_file(self) -> Path:
        return self.config_dir / "program.md"

    @property
    def ledger_file(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "control.sock"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "arnode.log"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "arnode.lock"

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold this home for one daemon: NodeError at once if another process holds it.

        A flock, not a pid file: the system lets go of it when the holder ends, however it ends."""
        self.ensure()
        with open(self.lock_file, "a+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip()[:20]
                raise NodeError(
                    f"this home ({self.data_dir}) is in use by another arnode daemon (pid {holder or 'unknown'});"
                    " stop it first, or use another --home"
                ) from None
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            yield

    def ensure(self) -> None:
        for directory in (self.config_dir, self.data_dir, self.cache_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
