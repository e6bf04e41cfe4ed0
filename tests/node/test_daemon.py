"""The daemon always answers: `status` comes from memory, and the views it shows are read off the trio thread."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from node.control import ask_daemon
from node.daemon import Daemon, DaemonOptions
from node.home import Home
from node.settings import Settings
from node.store.ledger import Ledger
from protocol.identity import Identity
from protocol.policy import Policy
from tests.node.store.test_ledger import T0, person, result

FOLLOWED_WITHIN_S = 30


@contextmanager
def peer_daemon(home: Home) -> Iterator[Daemon]:
    """A real daemon on 127.0.0.1 that runs no experiments and serves no page."""
    options = DaemonOptions(listen="/ip4/127.0.0.1/tcp/0", bootstrap=[], device="cpu", workers=[], max_experiments=None)
    home.ensure()
    policy = Policy(min_authors=1)
    with Ledger.open(home.ledger_file, policy) as ledger:
        yield Daemon(home, Identity.generate(), bytes(32), policy, Settings(), options, ledger)


async def running(daemon: Daemon, body) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.run)
        with trio.fail_after(FOLLOWED_WITHIN_S):
            while not daemon.home.control_socket.exists():
                await trio.sleep(0.05)
        await body(daemon)
        nursery.cancel_scope.cancel()


async def until(check, what: str):
    with trio.move_on_after(FOLLOWED_WITHIN_S):
        while not (found := check()):
            await trio.sleep(0.1)
        return found
    raise AssertionError(f"never saw {what}")


def test_status_follows_the_ledger_with_the_best_of_our_track(tmp_path):
    async def body(daemon: Daemon) -> None:
        assert daemon.status()["best"] is None
        runs = [result(person(n), T0 + n, bpb=1.0 + n / 1000, seed=n, track=daemon.track) for n in range(4)]
        daemon.ledger.add_many(record.raw for record in runs)  # as if a peer's runs had just arrived
        best = await until(lambda: daemon.status()["best"], "a best config in the status")
        assert best["config"] == daemon.ledger.view(daemon.track.key).best.config and best["runs"] == 4
        assert daemon.status()["records"] == 4

    with peer_daemon(Home.locate(tmp_path / "node")) as daemon:
        trio.run(running, daemon, body)


def test_status_answers_while_a_view_is_being_read(tmp_path):
    started, release = threading.Event(), threading.Event()

    def long_view(ledger: Ledger) -> int:
        started.set()
        assert release.wait(timeout=FOLLOWED_WITHIN_S), "status never answered while this read was running"
        return len(ledger)

    async def body(daemon: Daemon) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.reader.read, long_view)  # the reader is busy until released
            await trio.to_thread.run_sync(started.wait)
            daemon.ledger.add(result(person(1), T0, track=daemon.track).raw)
            status = await trio.to_thread.run_sync(ask_daemon, daemon.home.control_socket, "status")
            release.set()
        assert status["peer_id"] == daemon.identity.peer_id and status["records"] == 1

    with peer_daemon(Home.locate(tmp_path / "node")) as daemon:
        trio.run(running, daemon, body)
