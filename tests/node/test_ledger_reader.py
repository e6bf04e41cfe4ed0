"""The daemon's reader: reads off the trio thread that see every committed record, as the writer does."""

import threading

import trio

from node.ledger_reader import LedgerReader
from node.store.ledger import Ledger
from tests.node.store.test_ledger import T0, result
from tests.node.store.test_ledger_roster import FORGED, HONEST, INVITES, MEMBER, REVOCATION, ROSTER_POLICY

KEY = HONEST[0].track.key


def what_views_show(ledger: Ledger) -> tuple:
    return len(ledger), ledger.assess(), ledger.keys(), ledger.is_member(FORGED[0].author)


def test_each_read_sees_what_the_writer_committed_and_shows_the_writers_views(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", ROSTER_POLICY) as writer:
        reader = LedgerReader(writer.path, ROSTER_POLICY)

        async def follow() -> None:
            assert await reader.read(what_views_show) == what_views_show(writer)  # empty
            for batch in (INVITES + HONEST, FORGED, [REVOCATION], [result(MEMBER, T0 + 20, seed=7)]):
                writer.add_many(record.raw for record in batch)
                assert await reader.read(what_views_show) == what_views_show(writer)
            assert not await reader.read(Ledger.is_member, FORGED[0].author), "the revocation reached the reader"

        try:
            trio.run(follow)
        finally:
            reader.close()


def test_the_trio_thread_runs_on_while_a_read_is_busy(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", ROSTER_POLICY) as writer:
        writer.add_many(record.raw for record in INVITES + HONEST)
        reader = LedgerReader(writer.path, ROSTER_POLICY)
        release = threading.Event()

        def slow_view(ledger: Ledger) -> int:
            assert release.wait(timeout=30), "the trio thread never got to release this read"
            return len(ledger.runs(KEY))

        async def main() -> int:
            async with trio.open_nursery() as nursery:
                answers = []

                async def ask() -> None:
                    answers.append(await reader.read(slow_view))

                nursery.start_soon(ask)
                await trio.sleep(0.05)  # the read has started and is blocked; this thread is not
                release.set()
            return answers[0]

        try:
            assert trio.run(main) == len(HONEST)
        finally:
            reader.close()


def test_a_read_whose_caller_gave_up_finishes_unseen_and_the_next_is_answered(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", ROSTER_POLICY) as writer:
        writer.add_many(record.raw for record in INVITES + HONEST)
        reader = LedgerReader(writer.path, ROSTER_POLICY)
        release = threading.Event()
        finished = []

        def blocked(ledger: Ledger) -> None:
            release.wait(timeout=30)
            finished.append(len(ledger))

        async def main() -> int:
            with trio.move_on_after(0.05):
                await reader.read(blocked)
            release.set()
            return await reader.read(len)

        try:
            assert trio.run(main) == len(writer) and finished == [len(writer)]
        finally:
            reader.close()
