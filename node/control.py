"""The local control socket: `arnode status` and `arnode peers` ask the running daemon here.

A Unix socket in the node's home (mode 0600 through the home's 0700 directory), no network port.
One JSON request line, one JSON answer line.
"""

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from node.errors import NodeError
from protocol.errors import ProtocolError

log = logging.getLogger("arnode.control")

MAX_REQUEST = 1024
REPLY_TIMEOUT_S = 5.0


async def serve_control(path: Path, handlers: dict[str, Callable[[], Any]], *, task_status=trio.TASK_STATUS_IGNORED):
    """Answer requests until cancelled; the socket file is removed on the way out."""
    if path.exists() and await trio.to_thread.run_sync(daemon_answers, path):
        raise NodeError(f"another daemon is running for this home ({path}); stop it first or use another --home")
    path.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen()
    listener = trio.SocketListener(sock)
    task_status.started()
    try:
        await trio.serve_listeners(lambda stream: _answer(stream, handlers), [listener])
    finally:
        path.unlink(missing_ok=True)


async def _answer(stream: trio.SocketStream, handlers: dict[str, Callable[[], Any]]) -> None:
    async with stream:
        with trio.move_on_after(REPLY_TIMEOUT_S):
            try:
                request = await stream.receive_some(MAX_REQUEST)
                await stream.send_all(json.dumps(_reply(request, handlers), default=str).encode() + b"\n")
            except trio.BrokenResourceError:
                log.debug("a control client hung up before its answer")


def _reply(request: bytes, handlers: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    try:
        message = json.loads(request)
        handler = handlers[message["command"]]
        args = message.get("args", {})
        if not isinstance(args, dict):
            raise TypeError("args is an object")
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"ok": False, "error": f"unknown request; known: {', '.join(handlers)}"}
    try:
        return {"ok": True, "data": handler(**args)}
    except TypeError:  # arguments the handler does not take
        return {"ok": False, "error": f"bad arguments for {message['command']!r}"}
    except (NodeError, ProtocolError) as err:  # the handler's one-line refusal, for the client to show
        return {"ok": False, "error": str(err)}


def ask_daemon(path: Path, command: str, args: dict[str, Any] | None = None) -> Any:
    """The daemon's answer to ``command``; NodeError with one line when none is running."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(REPLY_TIMEOUT_S)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps({"command": command, **({"args": args} if args else {})}).encode())
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (FileNotFoundError, ConnectionRefusedError):
            raise NodeError(
                f"no arnode daemon is running for this home (no answer on {path}); start one with `arnode start`"
            ) from None
        except OSError as err:
            raise NodeError(f"the daemon did not answer on {path}: {err}") from None
    try:
        reply = json.loads(answer)
    except ValueError:
        raise NodeError(f"the daemon on {path} sent an unreadable answer") from None
    if not reply.get("ok"):
        raise NodeError(f"the daemon refused: {reply.get('error')}")
    return reply["data"]


def daemon_answers(path: Path) -> bool:
    """Whether a daemon answers on the control socket at ``path``."""
    try:
        ask_daemon(path, "status")
    except NodeError:
        return False
    return True
