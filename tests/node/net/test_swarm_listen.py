"""One port, one node: a second daemon asking for a port in use is refused, never handed a share of it."""

import socket

import pytest

from tests.arnode_process import Daemon, arnode

pytestmark = pytest.mark.process  # real daemons in other processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_daemons_asking_for_one_port_the_second_gets_one_line_and_the_first_keeps_it(tmp_path):
    listen = f"/ip4/127.0.0.1/tcp/{_free_port()}"
    first = Daemon(tmp_path / "first", "--role", "peer", "--listen", listen)
    try:
        first.wait_ready()
        second = arnode(tmp_path / "second", "start", "--plain", "--role", "peer", "--listen", listen, timeout=60)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
        assert "in use" in lines[-1] and listen in lines[-1]
        assert first.status() is not None  # the first daemon still answers on its port
    finally:
        first.stop()
