"""Are the findings right, and what do they cost beside the views they are derived from?

First, on --swarms simulated greedy swarms whose true effects are known (bench/findings_swarm.py:
one change helps by 3 sigma, one does nothing, one hurts by 6 sigma), how often each change gets
each verdict, how often it is listed as a dead end, and how often the 95% interval of its pooled
lead covers the true effect (95% of swarms if the edges' leads were independent; edges from nested
configs share some runs). A verdict needs a 97% posterior, so where the model's prior fits, about 3%
of verdicts at most are wrong: the error the acceptance rule allows itself.

Then, on bench/ledger.py's two synthetic histories (a shallow tree of one-knob changes on two
tracks, and a deep frontier-following lineage of one track), times one full assess (the reference:
the dashboard and `arnode findings` have it already), the Lineage that resolves parents' configs,
and protocol.findings.findings over the same views, and prints the findings' cost as a ratio to
the assess.

    python -m bench.findings [--swarms 40] [--rounds 6] [--shallow 20000] [--deep 4000,16000]
"""

import argparse
import time
from collections import Counter

from bench.findings_swarm import DOES_NOTHING, HELPS, HURTS, MOVES, Swarm, found, track
from bench.ledger import deep_records, synthetic_records
from protocol.acceptance import Lineage, Run, assess
from protocol.findings import findings
from protocol.policy import Policy
from protocol.records import decode

NOW_MS = 1_700_000_000_000 + 10**12  # the synthetic histories lie in the past of this clock


def calibrate(swarms: int, rounds: int) -> None:
    """Each change's verdicts over ``swarms`` swarms, against its true effect."""
    truths = dict(zip((HELPS, DOES_NOTHING, HURTS), (effect for _, effect in MOVES), strict=True))
    verdicts: dict[str, Counter] = {change: Counter() for change in truths}
    for seed in range(swarms):
        swarm = Swarm(track("sim-x1"), seed=seed)
        swarm.explore(rounds)
        result = found(swarm.runs)
        for change, effect in truths.items():
            finding = result[change]
            verdicts[change][finding.verdict] += 1
            verdicts[change]["dead end"] += finding.dead_end
            verdicts[change]["covered"] += finding.lead.bpb_low < effect * swarm.noise < finding.lead.bpb_high
    columns = ("helps", "nothing", "open", "hurts", "dead end", "covered")
    print(f"{swarms} swarms of {rounds} rounds; per change, swarms where its finding was:")
    print(f"{'change':<18}{'truth':>7}" + "".join(f"{column:>10}" for column in columns))
    for change, effect in truths.items():
        print(f"{change:<18}{effect:>+6.1f}σ" + "".join(f"{verdicts[change][column]:>10}" for column in columns))
    print()


def time_history(name: str, raws: list[bytes]) -> None:
    runs = [Run.from_record(decode(raw, NOW_MS)) for raw in raws]
    started = time.perf_counter()
    views = assess(runs, Policy())
    assessed = time.perf_counter()
    lineage = Lineage(sorted(runs, key=lambda run: (run.ts_ms, run.id)))
    by_track = {key: [run for run in runs if run.track.key == key] for key in views}
    linked = time.perf_counter()
    found = findings(views, by_track, lineage.resolve)
    done = time.perf_counter()
    assess_s, lineage_s, findings_s = assessed - started, linked - assessed, done - linked
    print(
        f"{name:<8}{len(runs):>8}{len(found):>9}{assess_s:>11.3f}{lineage_s:>11.3f}{findings_s:>12.3f}"
        f"{findings_s / assess_s:>10.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swarms", type=int, default=40, help="simulated swarms whose truth is known")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of exploration per swarm")
    parser.add_argument("--shallow", type=int, default=20000, help="runs of the shallow two-track history")
    parser.add_argument("--deep", default="4000,16000", help="comma-separated runs of the deep histories")
    args = parser.parse_args()
    calibrate(args.swarms, args.rounds)
    print(f"{'history':<8}{'runs':>8}{'changes':>9}{'assess s':>11}{'lineage s':>11}{'findings s':>12}{'ratio':>10}")
    time_history("shallow", synthetic_records(args.shallow))
    for count in (int(n) for n in args.deep.split(",")):
        time_history("deep", deep_records(count))


if __name__ == "__main__":
    main()
