import pytest
import trio

from node.control import ask_daemon, serve_control
from node.errors import NodeError


def test_the_running_daemon_answers_and_an_unknown_request_is_refused(tmp_path):
    path = tmp_path / "control.sock"

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, {"status": lambda: {"records": 3}})
            assert oct(path.stat().st_mode & 0o777) == "0o600"
            assert await trio.to_thread.run_sync(ask_daemon, path, "status") == {"records": 3}
            with pytest.raises(NodeError, match="unknown request"):
                await trio.to_thread.run_sync(ask_daemon, path, "reboot")
            with pytest.raises(NodeError, match="another daemon is running"):
                await serve_control(path, {})
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert not path.exists()


def test_no_daemon_gives_one_clear_line(tmp_path):
    with pytest.raises(NodeError, match="no arnode daemon is running") as err:
        ask_daemon(tmp_path / "control.sock", "status")
    assert "\n" not in str(err.value)


def test_a_stale_socket_file_from_a_killed_daemon_is_replaced(tmp_path):
    path = tmp_path / "control.sock"
    path.write_bytes(b"")

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, {"status": lambda: "up"})
            assert await trio.to_thread.run_sync(ask_daemon, path, "status") == "up"
            nursery.cancel_scope.cancel()

    trio.run(main)
