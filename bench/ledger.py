"""How fast does the ledger take records in, and how fast does it answer the leaderboard?

Builds a synthetic swarm history (20 authors, 2 hardware tracks, a tree of configs grown by
one-knob diffs, 10% crashes), signs it once (cached in the temp directory), then inserts it
into a fresh ledger in batches of 500 with full verification. At each checkpoint it times one
track's leaderboard (the history has two tracks of about equal size): the first query on a
freshly opened ledger, which reads the track's rows; the query after one more record arrived
on that track, which runs the acceptance rule again; and a repeated query, served from cache.
The reference is protocol.records.decode alone on the same records, in the same process.

That tree is shallow. A swarm that follows its frontier grows deep lineages (each exploration starts
from the config with the best estimate, most changes do nothing, some help, and a lucky child becomes
the next frontier: 8,000 runs lie about 700 changes deep), and the rule's cost grows with the depth.
So a second table times one full protocol.acceptance.assess of such a history at each of
--deep-runs, and the ledger's answers on the largest: its view after one more record arrived
(against a from-scratch assess of the same runs, which it must equal), and the read commands'
views (`arnode results`, `best`).

Why one more record costs a whole pass of the rule, not what it changed: a run of a config moves
that config's message, so every ancestor's (its path to the default) and, through each ancestor's
pooled evidence, the edge of every sibling along that path; the root's estimate moves, and with it
every config's; the prior is refitted to all the edges and pools the lineage again. On a
frontier-following history the path is the whole chain of accepted steps and the siblings are
nearly every other config, so an exact update touches nearly everything a full pass does, and both
cost about one round of numpy calls per depth of the lineage. What is cached instead: config
derivations (parent plus diff, applied and hashed: a pure function, once per ledger), and each
track's view until that track's runs or the roster change (node/store/views.py).

    python -m bench.ledger [--records 100000] [--checkpoints 10000,100000]
        [--deep-runs 1000,4000,16000,100000] [--repeats 5] [--deep-only]
"""

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

from node.store.ledger import Ledger
from protocol.acceptance import TrackView, assess
from protocol.config import Config, apply, config_hash, default_config, diff_between
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import decode, sign
from protocol.track import Track

POLICY = Policy()
HARDWARE = ("nvidia-h100-80gb-hbm3-x1", "nvidia-a100-sxm4-40gb-x1")
TRACKS = [
    Track(hw, POLICY.budget_kind, POLICY.budget, POLICY.dataset, "bpe8192", POLICY.eval_version) for hw in HARDWARE
]
T0 = 1_700_000_000_000
NOW = T0 + 10**12  # the synthetic history lies in the past of this clock
KNOB_STEPS = {  # knob -> values a diff may pick
    "matrix_lr": [0.02, 0.03, 0.05, 0.06],
    "embedding_lr": [0.3, 0.4, 0.8, 1.0],
    "weight_decay": [0.0, 0.1, 0.3],
    "adam_beta1": [0.7, 0.85, 0.9],
    "warmdown_ratio": [0.3, 0.4, 0.6],
    "depth": [6, 10, 12],
    "init_scale": [0.5, 0.8, 1.2],
}
METRICS = dict.fromkeys(
    ("steps", "tokens", "train_ms", "total_ms", "tokens_per_s", "mfu_ppm", "peak_mem_mb", "params"), 1000
)


History = Callable[[int, random.Random, list[Identity]], list[bytes]]  # (count, rng, authors) -> signed records


def _signed_once(name: str, count: int, seed: int, history: History) -> list[bytes]:
    """``history`` signed once and cached in the temp directory: the same records for the same arguments."""
    cache = Path(tempfile.gettempdir()) / f"arnode-bench-{name}-{count}-{seed}.msgpack"
    if cache.exists():
        return msgpack.unpackb(cache.read_bytes())
    rng = random.Random(seed)
    authors = [Identity.from_seed(rng.randbytes(32)) for _ in range(20)]
    raws = history(count, rng, authors)
    cache.write_bytes(msgpack.packb(raws))
    return raws


def synthetic_records(count: int, seed: int = 0) -> list[bytes]:
    """``count`` signed records of a plausible history, the same for the same arguments (cached on disk)."""
    return _signed_once("records", count, seed, _plausible_history)


def _plausible_history(count: int, rng: random.Random, authors: list[Identity]) -> list[bytes]:
    root = default_config("gpu")
    configs = [(root, root, 1.0)]  # (full config, its parent, true mean bpb)
    raws = []
    for n in range(count):
        if rng.random() < 0.05:
            base, _, mean = rng.choice(configs[-50:])
            knob = rng.choice(sorted(KNOB_STEPS))
            child = apply(base, {knob: rng.choice(KNOB_STEPS[knob])})
            if config_hash(child) != config_hash(base):
                configs.append((child, base, mean + rng.gauss(0, 0.01)))
        config, parent, mean = rng.choice(configs[-20:])
        raws.append(_result(rng, authors, config, parent, mean, T0 + n * 10).raw)
    return raws


def _result(rng: random.Random, authors: list[Identity], config: Config, parent: Config, mean: float, ts_ms: int):
    ok = rng.random() > 0.1
    body = {
        "track": rng.choice(TRACKS).to_wire(),
        "parent": config_hash(parent),
        "diff": diff_between(parent, config),
        "config": config_hash(config),
        "seed": rng.randrange(2**31),
        "outcome": "ok" if ok else "crash",
        "val_bpb": round(rng.gauss(mean, 0.002) * 1_000_000) if ok else None,
        "metrics": METRICS,
        "hypothesis": "synthetic run for the ledger benchmark",
        "proposer": "builtin",
        "code": "0" * 64,
        "log": "1" * 64,
        "error": "" if ok else "CUDA out of memory",
        "replicates": None,
    }
    return sign(rng.choice(authors), "result", body, ts_ms)


DEEP_SIGMA = 0.002  # bpb of seed noise in the deep history
DEEP_REPLICATE = 0.25  # share of runs that re-run the frontier instead of exploring from it
DEEP_CRASH = 0.05
DEEP_FLOOR = 0.5  # bpb no change gets below: the default's 1.0 bpb is halved at most
FRONTIER_LEAD = 0.4  # sigmas a child's run must beat its frontier's mean by to become the next frontier


def deep_records(count: int, seed: int = 0) -> list[bytes]:
    """``count`` signed records of one track explored by following its frontier (cached on disk).

    Each run either re-runs the frontier or explores a one-knob change from it: 60% do nothing, 8%
    help by 0.5-3 sigma (less and less near DEEP_FLOOR), the rest hurt by 1-20 sigma. A child whose
    run beats the frontier's mean by FRONTIER_LEAD sigma becomes the frontier, so lineages grow deep
    as in a real swarm.
    """
    return _signed_once("deep", count, seed, _frontier_history)


def _frontier_history(count: int, rng: random.Random, authors: list[Identity]) -> list[bytes]:
    root = default_config("gpu")
    full, true_bpb = {config_hash(root): root}, {config_hash(root): 1.0}
    frontier, parents, measured = config_hash(root), {config_hash(root): root}, {config_hash(root): []}
    raws = []
    for n in range(count):
        config = frontier
        if measured[frontier] and rng.random() >= DEEP_REPLICATE:
            child = apply(full[frontier], {"logit_softcap": round(1.0 + len(full) * 0.0001, 4)})
            config = config_hash(child)
            full[config], parents[config], measured[config] = child, full[frontier], []
            true_bpb[config] = true_bpb[frontier] + _deep_effect(rng, true_bpb[frontier])
        raw, value = _deep_result(rng, authors, full[config], parents[config], true_bpb[config], T0 + n * 10)
        raws.append(raw)
        if value is not None:
            measured[config].append(value)
            known = measured[frontier]
            if config != frontier and value < sum(known) / len(known) - FRONTIER_LEAD * DEEP_SIGMA:
                frontier = config
    return raws


def _deep_effect(rng: random.Random, parent_bpb: float) -> float:
    """A change's true effect; gains shrink on the way down to DEEP_FLOOR bpb, as real ones do."""
    draw = rng.random()
    if draw < 0.6:
        return 0.0
    if draw < 0.68:
        return -rng.uniform(0.5, 3.0) * DEEP_SIGMA * (parent_bpb - DEEP_FLOOR) / (1.0 - DEEP_FLOOR)
    return rng.uniform(1.0, 20.0) * DEEP_SIGMA


def _deep_result(
    rng: random.Random, authors: list[Identity], config: Config, parent: Config, mean: float, ts_ms: int
) -> tuple[bytes, float | None]:
    """One signed run of ``config`` on the deep history's track, and its val_bpb (None for a crash)."""
    ok = rng.random() >= DEEP_CRASH
    value = rng.gauss(mean, DEEP_SIGMA) if ok else None
    body = {
        "track": TRACKS[0].to_wire(),
        "parent": config_hash(parent),
        "diff": diff_between(parent, config),
        "config": config_hash(config),
        "seed": rng.randrange(2**31),
        "outcome": "ok" if ok else "crash",
        "val_bpb": round(value * 1_000_000) if ok else None,
        "metrics": METRICS,
        "hypothesis": "synthetic run of a frontier-following swarm",
        "proposer": "builtin",
        "code": "0" * 64,
        "log": "1" * 64,
        "error": "" if ok else "CUDA out of memory",
        "replicates": None,
    }
    return sign(rng.choice(authors), "result", body, ts_ms).raw, value


def time_leaderboard(path: Path, extra: bytes) -> tuple[float, float, float]:
    """Seconds for one track's leaderboard: first query on a freshly opened ledger (reads its runs), the
    query after one more record arrived on that track (runs the rule again), and a repeated query."""
    ledger = Ledger.open(path, POLICY)
    key = decode(extra, NOW).track.key
    started = time.perf_counter()
    ledger.leaderboard(key)
    cold = time.perf_counter() - started
    ledger.add(extra, now_ms=NOW)
    started = time.perf_counter()
    ledger.leaderboard(key)
    grown = time.perf_counter() - started
    started = time.perf_counter()
    ledger.leaderboard(key)
    warm = time.perf_counter() - started
    ledger.close()
    return cold, grown, warm


def lineage_depth(view: TrackView) -> int:
    """How many changes the deepest config on a true lineage lies below its default."""
    parents = {s.config: s.parent for s in view.leaderboard if s.estimate is not None}
    depth: dict[str, int] = {}
    for config in parents:
        chain = []  # the configs below the nearest one whose depth is known (or a default, at 0)
        while config not in depth and parents[config] != config:
            chain.append(config)
            config = parents[config]
        known = depth.setdefault(config, 0)
        for node in reversed(chain):
            known += 1
            depth[node] = known
    return max(depth.values(), default=0)


def time_deep(sizes: list[int], repeats: int) -> None:
    """The deep history: a full assess at each size, then the ledger's views at the largest."""
    largest = sizes[-1]
    started = time.perf_counter()
    raws = deep_records(largest + repeats)
    print(f"\n{len(raws)} records of a frontier-following history ready in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.sqlite"
        with Ledger.open(path, POLICY) as ledger:
            for start in range(0, largest, 500):
                ledger.add_many(raws[start : min(start + 500, largest)], now_ms=NOW)
            key = TRACKS[0].key
            runs = list(ledger.runs(key))
        print("\n| runs | lineage depth | one full assess s |")
        print("| --- | --- | --- |")
        for size in sizes:
            started = time.perf_counter()
            view = assess(runs[:size], POLICY)[key]
            print(f"| {size:,} | {lineage_depth(view)} | {time.perf_counter() - started:.2f} |")
        time_views(path, key, raws[largest:])


def time_views(path: Path, key: str, extra: list[bytes]) -> None:
    """The ledger's view of the deep track after each of ``extra`` arrives, against a full assess of
    the same runs, and the read commands' first view on a freshly opened ledger."""
    started = time.perf_counter()
    with Ledger.open(path, POLICY, read_only=True) as ledger:
        ledger.assess()
        ledger.best()
    print(f"\n`arnode results` / `best` views: open the ledger and assess: {time.perf_counter() - started:.2f} s")
    updates, fulls = [], []
    with Ledger.open(path, POLICY) as ledger:
        ledger.view(key)
        for raw in extra:
            ledger.add(raw, now_ms=NOW)
            started = time.perf_counter()
            view = ledger.view(key)
            updates.append(time.perf_counter() - started)
            started = time.perf_counter()
            full = assess(ledger.runs(key), POLICY)[key]
            fulls.append(time.perf_counter() - started)
            if view != full:
                raise SystemExit("the ledger's view differs from a full assess of the same runs")
        runs = len(ledger.runs(key))
    update, full = statistics.median(updates), statistics.median(fulls)
    print(
        f"one more record on a track of {runs:,} runs: view updated in"
        f" {update * 1000:.0f} ms median, a full assess {full * 1000:.0f} ms ({full / update:.1f}x), identical"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--checkpoints", default="10000,100000")
    parser.add_argument("--deep-runs", default="1000,4000,16000,100000", help="sizes of the deep history to assess")
    parser.add_argument("--repeats", type=int, default=5, help="records to arrive one by one on the deep track")
    parser.add_argument("--deep-only", action="store_true", help="skip the shallow insert table")
    args = parser.parse_args()
    if not args.deep_only:
        time_shallow(args.records, args.checkpoints)
    time_deep(sorted(int(n) for n in args.deep_runs.split(",")), args.repeats)


def time_shallow(records: int, checkpoint_list: str) -> None:
    """The shallow history: insert rate and one track's leaderboard at each checkpoint."""
    checkpoints = sorted(min(int(n), records) for n in checkpoint_list.split(","))

    started = time.perf_counter()
    raws = synthetic_records(records + 1)  # one more to arrive after the last checkpoint
    mean_bytes = sum(map(len, raws)) / len(raws)
    print(f"{len(raws)} records ready in {time.perf_counter() - started:.1f} s, {mean_bytes:.0f} bytes each")

    sample = raws[:5000]
    started = time.perf_counter()
    for raw in sample:
        decode(raw, NOW)
    decode_rate = len(sample) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.sqlite"
        print(
            "\n| records | insert rec/s | vs decode alone | leaderboard ms: first | after +1 record | again | file MB |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        done, insert_seconds = 0, 0.0
        for checkpoint in checkpoints:
            ledger = Ledger.open(path, POLICY)
            started = time.perf_counter()
            while done < checkpoint:
                ledger.add_many(raws[done : min(done + 500, checkpoint)], now_ms=NOW)
                done = min(done + 500, checkpoint)
            insert_seconds += time.perf_counter() - started
            ledger.close()
            rate = done / insert_seconds
            cold, grown, warm = time_leaderboard(path, raws[checkpoint])
            print(
                f"| {checkpoint:,} | {rate:,.0f} | {rate / decode_rate:.2f} | {cold * 1000:.0f} | {grown * 1000:.0f}"
                f" | {warm * 1000:.3f} | {path.stat().st_size / 1e6:.0f} |"
            )
    print(f"\nreference: protocol.records.decode alone, {decode_rate:,.0f} records/s on one core")


if __name__ == "__main__":
    main()
