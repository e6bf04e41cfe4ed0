"""The node's identity on disk: created once with mode 0600, never overwritten."""

import os
from pathlib import Path

from node.errors import NodeError
from protocol.errors import ProtocolError
from protocol.identity import Identity


class KeyFileError(NodeError):
    """The identity file exists but cannot be used; the message names it."""


def load_or_create_identity(path: Path) -> Identity:
    if path.exists():
        return load_identity(path)
    identity = Identity.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: two processes starting at once must not both write a key
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_identity(path)
    with os.fdopen(fd, "wb") as file:
        file.write(identity.to_pem())
        file.flush()
        os.fsync(file.fileno())
    return identity


def load_identity(path: Path) -> Identity:
    try:
        return Identity.from_pem(path.read_bytes())
    except OSError as err:
        raise KeyFileError(f"cannot read identity {path}: {err.strerror}") from None
    except ProtocolError as err:
        raise KeyFileError(f"identity {path} is corrupt ({err}); move it away to create a new one") from None
