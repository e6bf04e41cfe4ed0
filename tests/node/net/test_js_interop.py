"""A stock js-libp2p client (tests/node/net/js, packages pinned by its lockfile) against a real node.

The node runs in its own process on 127.0.0.1 with a roster; the client, in Node.js, joins with the
swarm's key exported by `arnode swarm psk` in the standard file format, through js-libp2p's own
pnet (XSalsa20), Noise, Yamux, identify and GossipSub. It receives the node's records, publishes a
record of an invited member that the node accepts, and sends garbage that the node refuses.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from node.clock import now_ms
from node.swarmfile import load_swarm_file
from protocol.identity import Identity
from tests.arnode_process import arnode
from tests.node.net.swarm_process import held, kill_all, make_record, publish, roster_policy, start_node, wait_until

JS_DIR = Path(__file__).parent / "js"
ROOT = Path(__file__).resolve().parents[3]
RECORDS_FROM_THE_NODE = 5
NODE_MAJOR = 20


def _why_skip() -> str:
    if shutil.which("node") is None:
        return f"Node.js is not installed (the interop test needs Node {NODE_MAJOR} or newer)"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < NODE_MAJOR:
        return f"Node.js {version} is too old for the js-libp2p client (needs {NODE_MAJOR} or newer)"
    if not (JS_DIR / "node_modules").is_dir():
        return f"the js client's packages are not installed: run `npm ci` in {JS_DIR.relative_to(ROOT)}"
    return ""


SKIP_REASON = _why_skip()
pytestmark = [pytest.mark.process, pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "ready")]


class JsClient:
    """The js client's process: commands on stdin, replies and events on stdout, its stderr in a file."""

    def __init__(self, key_file: Path, seed: bytes, topic: str, peer_addr: str | None, log_file: Path) -> None:
        """Dials ``peer_addr``; or, if None, listens on 127.0.0.1 and waits to be dialled."""
        argv = ["node", "client.mjs", "--key-file", str(key_file), "--seed", seed.hex(), "--topic", topic]
        argv += ["--peer", peer_addr] if peer_addr else ["--listen"]
        with open(log_file, "ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
            )
        self.log_file = log_file
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received: set[str] = set()  # ids of the records it got by gossip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            if message.get("event") == "record":
                self.received.add(message["id"])
            elif "event" in message:
                self.events.put(message)
            else:
                self.replies.put(message)
        self.replies.put(None)

    def event(self, timeout: float) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the js client said nothing for {timeout:g} s; see {self.log_file}") from None

    def request(self, command: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply to {command['cmd']} within {timeout:g} s; see {self.log_file}") from None
        assert reply is not None, f"the js client exited ({self.process.poll()}); see {self.log_file}"
        assert "error" not in reply, reply
        return reply

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):  # gone already, or stuck: it is killed below
                self.process.kill()
                self.process.wait(10)


def run_arnode(home: Path, *args: str) -> None:
    done = arnode(home, *args)
    assert done.returncode == 0, done.stderr


def counter(node, name: str) -> int:
    return node.request({"cmd": "counters"})["counters"].get(name, 0)


@pytest.mark.parametrize("dialler", ["js", "node"])
def test_a_stock_js_libp2p_peer_joins_with_the_standard_pnet_receives_publishes_and_is_refused_garbage(
    tmp_path, dialler
):
    home = tmp_path / "home"
    home.mkdir()
    run_arnode(home, "swarm", "new-key")
    swarm_key, _policy = load_swarm_file(home / "swarm.toml")
    key_file = tmp_path / "swarm.key"
    run_arnode(home, "swarm", "psk", "-o", str(key_file))  # the file a stock libp2p node reads

    founder_seed, member_seed = os.urandom(32), os.urandom(32)
    founder = Identity.from_seed(founder_seed).peer_id
    member = Identity.from_seed(member_seed)
    topic = roster_policy([founder]).topic
    nodes, client = [], None
    try:
        bootstrap = []
        if dialler == "node":  # the js peer listens first; the node has it as its bootstrap peer
            client = JsClient(key_file, member_seed, topic, None, tmp_path / "js.log")
            bootstrap = client.event(timeout=60)["addrs"]
        node = start_node(tmp_path / "node", swarm_key, bootstrap, seed=founder_seed, founder=founder, log="INFO")
        nodes.append(node)
        invite = node.request({"cmd": "invite", "peer": member.peer_id})["published"]
        if dialler == "js":
            client = JsClient(key_file, member_seed, topic, node.addrs[0], tmp_path / "js.log")
        ready = client.event(timeout=60)
        assert ready["event"] == "ready" and ready["remote"] == node.peer_id, ready
        assert ready["peer_id"] == member.peer_id
        mesh = client.request({"cmd": "wait_mesh"})
        assert mesh["subscribed"], mesh

        sent = publish(node, RECORDS_FROM_THE_NODE)
        wait_until(lambda: sent <= client.received, 30, what="the node's records at the js client")

        record = make_record(member, 1, now_ms())
        client.request({"cmd": "publish", "hex": record.raw.hex()})
        wait_until(lambda: record.hex_id in held(node), 30, what="the member's record, from js, in the ledger")

        invalid_before, count_before = counter(node, "gossip_invalid"), len(held(node))
        client.request({"cmd": "publish", "hex": os.urandom(200).hex()})
        wait_until(lambda: counter(node, "gossip_invalid") > invalid_before, 30, what="gossip garbage rejected")
        sync_garbage = client.request({"cmd": "sync_garbage", "hex": os.urandom(200).hex()})
        assert sync_garbage["ended"] == "reset", sync_garbage  # a broken protocol is reset, not closed gracefully
        assert len(held(node)) == count_before  # nothing stored from garbage, and the node still answers
        assert invite in held(node)
        print(
            f"\njs-libp2p interop, {dialler} dialling: connected through the standard pnet ({ready['encryption']}, "
            f"{ready['multiplexer']}, {', '.join(mesh['protocols'])}); records received "
            f"{len(sent & client.received)}/{len(sent)}; invited member's record accepted: yes; "
            f"gossip garbage refused: yes; sync garbage: stream {sync_garbage['ended']} "
            f"after {sync_garbage['answered_bytes']} bytes back"
        )
    finally:
        if client is not None:
            client.stop()
        kill_all(nodes)
