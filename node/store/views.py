"""The views of a ledger: the acceptance rule's verdict per track, recomputed only where runs changed.

Every view is what protocol.acceptance.assess gives on the track's runs from scratch (a property
test holds them to it); what is kept between views only saves work:

- per track, the view and the (runs, roster version) it was computed from: a record changes only
  its own track, and a roster change (a revocation hides runs) changes every track;
- the derivations (a config's parent plus a diff, applied and hashed), shared by every track, every
  view and config resolution: a derivation depends only on the parent's hash and the diff, and
  re-deriving every config was a fifth of a view's cost on a deep track (bench/ledger.py).

The rule runs with Python's cycle collector paused (``collector_paused``): it allocates hundreds of
thousands of small objects, none of them in cycles, and each full collection walks every object the
node holds (a 100k-run track's runs and configs), which cost 40% of a view at 40k runs and more above.

Where the rest of a view's cost goes, and why the rule's lineage model keeps it from being cut to
what one record changed, is in bench/ledger.py's docstring.
"""

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from protocol.acceptance import Derivations, Lineage, Run, TrackView, assess
from protocol.config import Config
from protocol.policy import Policy

Version = tuple[int, int]  # (runs of the track, roster version): what a cached view was computed from


class Views:
    """The views of one ledger's tracks, each cached until its runs or the roster change."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.derivations: Derivations = {}
        self._views: dict[str, tuple[Version, TrackView | None]] = {}
        self._lineage: tuple[Version | None, Lineage | None] = (None, None)

    def view(self, track_key: str, runs: list[Run], roster_version: int) -> TrackView | None:
        """The view of a track from its runs by members, None while it has none."""
        version = (len(runs), roster_version)
        computed_from, view = self._views.get(track_key, (None, None))
        if computed_from != version:
            with collector_paused():
                view = assess(runs, self.policy, self.derivations).get(track_key)
            self._views[track_key] = (version, view)
        return view

    def resolve(self, config_hash: str, version: Version, runs: Callable[[], Iterable[Run]]) -> Config | None:
        """The full config named by ``config_hash`` as the rule's Lineage over ``runs()`` resolves it, None
        if no chain of true links leads home; ``version`` names the record set, as in ``view``."""
        if self._lineage[0] != version or self._lineage[1] is None:
            ordered = sorted(runs(), key=lambda run: (run.ts_ms, run.id))
            self._lineage = (version, Lineage(ordered, self.derivations))
        with collector_paused():
            return self._lineage[1].resolve(config_hash)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block, then back on if it was on: objects are still freed
    as their last reference goes, only garbage in cycles waits. Threads may overlap: whoever found it
    on turns it back on, so it never stays off."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
