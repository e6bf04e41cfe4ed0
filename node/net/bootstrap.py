"""Bootstrap peer files: one ``/ip4/HOST/tcp/PORT/p2p/PEER_ID`` a line, ``#`` comments, blank lines.

A bad line is reported with its line number and skipped, so one typo never stops a node from
joining through the other peers on the list. A file with lines but not one valid address is an
error: it is not a list of peers at all, and a node that went on would found a swarm of its own.
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
    """The valid multiaddrs of a bootstrap file's text, in order, and one warning per bad line;
    NodeError naming the first bad line when no line is valid."""
    addrs: list[str] = []
    bad: list[tuple[int, str]] = []  # (line number, what is wrong with it)
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            parse_peer_addr(line)
        except ValueError as err:
            bad.append((number, str(err)))
            continue
        if line not in addrs:
            addrs.append(line)
    if bad and not addrs:
        number, why = bad[0]
        raise NodeError(f"{source}:{number}: not one valid peer address in the file; the first bad line: {why}")
    return addrs, [f"{source}:{number}: skipped: {why}" for number, why in bad]


def parse_bootstrap_file(path: Path) -> tuple[list[str], list[str]]:
    """Read a bootstrap file; NodeError if it cannot be read at all."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NodeError(f"bootstrap file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NodeError(f"cannot read bootstrap file {path}: {err}") from None
    return parse_bootstrap_text(text, str(path))


def bootstrap_sources(explicit: str | None, configured: str, config_dir: Path) -> list[Path]:
    """Where bootstrap peers come from: --bootstrap, the config's bootstrap_file, else
    ./bootstrap_peers.txt and the one in the home's config directory, those that exist."""
    if explicit:
        return [Path(explicit)]
    if configured:
        return [Path(configured).expanduser()]
    return [path for path in (Path("bootstrap_peers.txt"), config_dir / "bootstrap_peers.txt") if path.exists()]


def bootstrap_addrs(explicit: str | None, configured: str, config_dir: Path) -> tuple[list[str], list[str]]:
    """The peers to dial from every bootstrap source, in order, and one warning per bad line."""
    addrs: list[str] = []
    warnings: list[str] = []
    for path in bootstrap_sources(explicit, configured, config_dir):
        found, bad = parse_bootstrap_file(path)
        addrs += [addr for addr in found if addr not in addrs]
        warnings += bad
    return addrs, warnings
