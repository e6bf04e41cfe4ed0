"""Where a node keeps its files: ``--home DIR`` / ``ARNODE_HOME``, else the platform's usual places."""

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

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

    def ensure(self) -> None:
        for directory in (self.config_dir, self.data_dir, self.cache_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
