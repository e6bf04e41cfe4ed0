"""Bootstrap peer files: one ``/ip4/HOST/tcp/PORT/p2p/PEER_ID`` a line, ``#`` comments, blank lines.

A bad line is reported with its line number and skipped, so one typo never stops a node from
joining through the other peers on the list.
"""

from pathlib import Path

import multiaddr

from node.errors import NodeError
from protocol.errors import ProtocolError
from protocol.identity import public_from_peer_id

MAX_LINE_CHARS = 1000


def parse_peer_addr(text: str) -> tuple[str, str]:
    """(peer ID, the address without /p2p) of a full multiaddr; ValueError saying why not."""
    if len(text) > MAX_LINE_CHARS:
        raise ValueError(f"longer than {MAX_LINE_CHARS} characters")
    try:
        addr = multiaddr.Multiaddr(text)
        names = [protocol.name for protocol in addr.protocols()]
    except Exception as err:  # the multiaddr package raises a zoo of types for bad text
        raise ValueError(f"not a multiaddr ({type(err).__name__})") from None
    if names[-1:] != ["p2p"]:
        raise ValueError("does not end in /p2p/<peer id>")
    peer_id = addr.value_for_protocol("p2p")
    try:
        public_from_peer_id(peer_id)
    except ProtocolError:
        raise ValueError(f"{peer_id[:60]} is not an Ed25519 peer ID") from None
    transport = str(addr.decapsulate(multiaddr.Multiaddr(f"/p2p/{peer_id}")))
    if "/tcp/" not in transport:
        raise ValueError("has no /tcp/ part (this node speaks TCP only)")
    return peer_id, transport


def parse_bootstrap_text(text: str, source: str = "bootstrap") -> tuple[list[str], list[str]]:
    """The valid multiaddrs of a bootstrap file's text, in order, and one warning per bad line."""
    addrs: list[str] = []
    warnings: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            parse_peer_addr(line)
        except ValueError as err:
            warnings.append(f"{source}:{number}: skipped: {err}")
            continue
        if line not in addrs:
            addrs.append(line)
    return addrs, warnings


def parse_bootstrap_file(path: Path) -> tuple[list[str], list[str]]:
    """Read a bootstrap file; NodeError if it cannot be read at all."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NodeError(f"bootstrap file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NodeError(f"cannot read bootstrap file {path}: {err}") from None
    return parse_bootstrap_text(text, str(path))
