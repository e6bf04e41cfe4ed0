"""A ledger killed mid-insert reopens cleanly and keeps every batch it acknowledged as committed."""

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from node.store.ledger import Ledger
from tests.node.store.test_ledger import POLICY, T0, person, result

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

BATCH = 25
KILLS = 20

# The child inserts the batches it does not hold yet and says so after each commit.
CHILD = """
import sys, msgpack
from pathlib import Path
from node.store.ledger import Ledger
from tests.node.store.test_ledger import POLICY

raws = msgpack.unpackb(Path(sys.argv[1]).read_bytes())
ledger = Ledger.open(Path(sys.argv[2]), POLICY)
for end in range(int(sys.argv[3]), len(raws) + 1, int(sys.argv[3])):
    ledger.add_many(raws[end - int(sys.argv[3]):end])
    print("committed", end, flush=True)
"""


def run_until_killed(records_file: Path, ledger_file: Path, rng: random.Random) -> int:
    """Start the child, SIGKILL it at a random moment after its first commit; the last count it acknowledged."""
    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(records_file), str(ledger_file), str(BATCH)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    first = child.stdout.readline() if rng.random() < 0.9 else ""  # now and then, kill it while it starts
    time.sleep(rng.uniform(0, 0.03))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    # only a whole line is an acknowledgement: the kill may cut the last one short
    return max((int(count) for count in re.findall(r"committed (\d+)\n", first + out)), default=0)


def test_every_acknowledged_batch_survives_sigkill(tmp_path):
    records = [result(person(n % 4), T0 + n, seed=n) for n in range(100 * BATCH)]
    records_file, ledger_file = tmp_path / "records.msgpack", tmp_path / "ledger.sqlite"
    records_file.write_bytes(msgpack.packb([r.raw for r in records]))
    rng = random.Random(4)
    acknowledged = 0
    for _ in range(KILLS):
        acknowledged = max(acknowledged, run_until_killed(records_file, ledger_file, rng))
        ledger = Ledger.open(ledger_file, POLICY)  # reopens without error after every kill
        assert all(ledger.has(record.id) for record in records[:acknowledged])
        assert len(ledger) >= acknowledged
        ledger.close()
    assert acknowledged > 0
