"""Announcements: signed soft state that peers gossip but never store in the ledger.

Two kinds share one envelope:

- ``addrs``: "I listen on these multiaddrs". Nodes that only know a bootstrap peer learn of each
  other this way, and a node that restarts on a known address is found again.
- ``claim``: "I am running config X on track T until time t", so others pick different work.

Wire form, like a record's but under its own signing tag so neither can pass for the other:
canonical msgpack ``[payload, signature]``, the payload being ``{v, kind, author, ts_ms, body}``.
"""

import re
from dataclasses import dataclass
from typing import Any

from protocol import envelope
from protocol.errors import ProtocolError
from protocol.identity import Identity

MAX_ANNOUNCE_BYTES = 2048
MAX_ADDRS = 8
MAX_ADDR_CHARS = 200
MAX_TRACK_KEY_CHARS = 200
MAX_CLAIM_TTL_MS = 6 * 3600 * 1000  # a claim outliving the longest sane run is a stuck node
MAX_SKEW_MS = 5 * 60 * 1000  # clocks of honest peers agree within minutes
MAX_AGE_MS = 10 * 60 * 1000  # an announcement older than this is stale news, maybe a replay
_SIGNING_TAG = b"arnode/announce/1\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A multiaddr in text form: printable ASCII starting with a slash, nothing a terminal would act on.
_ADDR = re.compile(r"/[!-~]{1,199}")
_TRACK_KEY = re.compile(r"[a-z0-9][a-z0-9./-]{0,199}")
KINDS = ("addrs", "claim")


class AnnounceError(ProtocolError):
    """An announcement's bytes were rejected."""


@dataclass(frozen=True)
class Addrs:
    author: str
    ts_ms: int
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    author: str
    ts_ms: int
    track_key: str
    config: str
    expires_ms: int

    def live(self, now_ms: int) -> bool:
        return self.ts_ms <= now_ms + MAX_SKEW_MS and now_ms < self.expires_ms


Announcement = Addrs | Claim


def sign_addrs(identity: Identity, addrs: list[str], ts_ms: int) -> bytes:
    return _sign(identity, "addrs", {"addrs": list(addrs)}, ts_ms)


def sign_claim(identity: Identity, track_key: str, config: str, ts_ms: int, ttl_ms: int) -> bytes:
    return _sign(identity, "claim", {"track": track_key, "config": config, "expires_ms": ts_ms + ttl_ms}, ts_ms)


def decode(data: bytes, now_ms: int) -> Announcement:
    """Parse and verify untrusted bytes; AnnounceError with a one-line reason is the only failure."""
    kind, author, ts_ms, body = envelope.open_sealed(
        data, tag=_SIGNING_TAG, kinds=dict.fromkeys(KINDS), max_bytes=MAX_ANNOUNCE_BYTES, now_ms=now_ms,
        max_future_ms=MAX_SKEW_MS, error=AnnounceError, noun="an announcement",
    )  # fmt: skip
    if ts_ms < now_ms - MAX_AGE_MS:
        raise AnnounceError(f"announcement is {(now_ms - ts_ms) // 1000} s old")
    if not isinstance(body, dict):
        raise AnnounceError("body must be a map")
    if kind == "addrs":
        return Addrs(author, ts_ms, _check_addrs(body))
    track_key, config, expires_ms = _check_claim(body, ts_ms)
    return Claim(author, ts_ms, track_key, config, expires_ms)


def _sign(identity: Identity, kind: str, body: dict[str, Any], ts_ms: int) -> bytes:
    data = envelope.seal(identity, _SIGNING_TAG, kind, body, ts_ms)
    decode(data, ts_ms)  # ours must pass the checks a peer applies, or we would gossip garbage
    return data


def _check_addrs(body: dict[str, Any]) -> tuple[str, ...]:
    if set(body) != {"addrs"} or not isinstance(body["addrs"], list):
        raise AnnounceError("an addrs body is exactly {addrs: [text]}")
    addrs = body["addrs"]
    if not 0 < len(addrs) <= MAX_ADDRS:
        raise AnnounceError(f"between 1 and {MAX_ADDRS} addresses")
    for addr in addrs:
        if not isinstance(addr, str) or not _ADDR.fullmatch(addr):
            raise AnnounceError(f"address {str(addr)[:40]!r} is not a multiaddr of at most {MAX_ADDR_CHARS} chars")
    return tuple(addrs)


def _check_claim(body: dict[str, Any], ts_ms: int) -> tuple[str, str, int]:
    if set(body) != {"track", "config", "expires_ms"}:
        raise AnnounceError("a claim body is exactly {track, config, expires_ms}")
    track_key, config, expires_ms = body["track"], body["config"], body["expires_ms"]
    if not isinstance(track_key, str) or not _TRACK_KEY.fullmatch(track_key):
        raise AnnounceError(f"track key is a slug path of at most {MAX_TRACK_KEY_CHARS} chars")
    if not isinstance(config, str) or not _HEX64.fullmatch(config):
        raise AnnounceError("config is 64 lowercase hex digits")
    if type(expires_ms) is not int or not ts_ms < expires_ms <= ts_ms + MAX_CLAIM_TTL_MS:
        raise AnnounceError(f"a claim expires after its timestamp and within {MAX_CLAIM_TTL_MS // 3_600_000} h")
    return track_key, config, expires_ms
