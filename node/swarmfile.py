"""Swarm files on disk: the private-network key and the policy, mode 0600, never overwritten; and
which swarm a home belongs to."""

import os
import secrets
from pathlib import Path

from node.errors import NodeError
from node.home import Home
from protocol.errors import ConfigError
from protocol.policy import PSK_BYTES, Policy, format_swarm_file, parse_swarm_file


def load_swarm_file(path: Path) -> tuple[bytes, Policy]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NodeError(f"swarm file {path} does not exist; create one with `arnode swarm new-key`") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NodeError(f"cannot read swarm file {path}: {err}") from None
    try:
        return parse_swarm_file(text)
    except ConfigError as err:
        raise NodeError(f"swarm file {path} is invalid: {err}") from None


def create_swarm_file(path: Path, policy: Policy) -> bytes:
    """Write a new swarm file with a fresh key; refuse to replace an existing file."""
    psk = secrets.token_bytes(PSK_BYTES)
    write_swarm_file(path, psk, policy)
    return psk


def write_swarm_file(path: Path, psk: bytes, policy: Policy) -> None:
    """Write a swarm file, mode 0600 from the start; refuse to replace an existing file."""
    write_secret_file(path, format_swarm_file(psk, policy), "swarm file")


def write_secret_file(path: Path, text: str, noun: str) -> None:
    """Write a file that holds a key, mode 0600 from the start; refuse to replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise NodeError(f"{noun} {path} already exists; it is never overwritten") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def swarm_of(home: Home, swarm_key: str | None) -> tuple[bytes, Policy, Path]:
    """The swarm of ``swarm_key`` (a file), else the one this home belongs to; NodeError if none."""
    path = Path(swarm_key) if swarm_key else home.swarm_file
    if not path.exists() and not swarm_key:
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
