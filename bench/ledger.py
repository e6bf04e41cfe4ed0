"""How fast does the ledger take records in, and how fast does it answer the leaderboard?

Builds a synthetic swarm history (20 authors, 2 hardware tracks, a tree of configs grown by
one-knob diffs, 10% crashes), signs it once (cached in the temp directory), then inserts it
into a fresh ledger in batches of 500 with full verification. At each checkpoint it times one
track's leaderboard (the history has two tracks of about equal size): the first query on a
freshly opened ledger, which reads the track's rows; the query after one more record arrived
on that track, which runs the acceptance rule again; and a repeated query, served from cache.
The reference is protocol.records.decode alone on the same records, in the same process.

    python -m bench.ledger [--records 100000] [--checkpoints 10000,100000]
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import msgpack

from node.store.ledger import Ledger
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


def synthetic_records(count: int, seed: int = 0) -> list[bytes]:
    """``count`` signed records of a plausible history, the same for the same arguments (cached on disk)."""
    cache = Path(tempfile.gettempdir()) / f"arnode-bench-records-{count}-{seed}.msgpack"
    if cache.exists():
        return msgpack.unpackb(cache.read_bytes())
    rng = random.Random(seed)
    authors = [Identity.from_seed(rng.randbytes(32)) for _ in range(20)]
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
    cache.write_bytes(msgpack.packb(raws))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--checkpoints", default="10000,100000")
    args = parser.parse_args()
    checkpoints = sorted(min(int(n), args.records) for n in args.checkpoints.split(","))

    started = time.perf_counter()
    raws = synthetic_records(args.records + 1)  # one more to arrive after the last checkpoint
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
