"""The live page in a real headless Chromium: it loads, shows what the node records, and updates itself."""

import shutil
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import trio

from bench.findings_swarm import Swarm
from node.daemon import Daemon, DaemonOptions
from node.dashboard import Dashboard
from node.home import Home
from node.ledger_reader import LedgerReader
from node.settings import Settings
from node.store.ledger import Ledger
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import Record, sign
from protocol.track import Track
from tests.node.commands.test_findings import records_of
from tests.node.store.test_ledger import POLICY, ROOT, T0, TRACK, person, result

pytestmark = pytest.mark.process  # a real node and a real browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SEEN_WITHIN_S = 30  # the page polls every 2 s
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Chromium and its driver (Debian: apt-get install chromium chromium-driver; .ci/run installs them)",
)


def open_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def record_ids_shown(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#recent td.record-id')].map((cell) => cell.textContent)"
    )


async def wait_for(check, what: str, in_browser: bool = True):
    """``check()``'s first truthy answer; browser calls block, so they run in a thread (not the node's)."""
    with trio.move_on_after(SEEN_WITHIN_S):
        while not (found := await trio.to_thread.run_sync(check) if in_browser else check()):
            await trio.sleep(0.25)
        return found
    raise AssertionError(f"never saw {what}")


@asynccontextmanager
async def browser_on_page(daemon: Daemon) -> AsyncIterator:
    """The daemon running and a real browser on its page, for the block; the browser quits first."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.run)
        url = await wait_for(lambda: daemon.dashboard_url, "the page's address", in_browser=False)
        browser = await trio.to_thread.run_sync(open_browser)
        try:
            await trio.to_thread.run_sync(browser.get, url)
            yield browser
        finally:
            await trio.to_thread.run_sync(browser.quit)
        nursery.cancel_scope.cancel()


@contextmanager
def peer_daemon(home: Home, policy: Policy | None = None) -> Iterator[Daemon]:
    """A real daemon that runs no experiments, its page on a free port of 127.0.0.1."""
    options = DaemonOptions(
        listen="/ip4/127.0.0.1/tcp/0",
        bootstrap=[],
        device="cpu",
        workers=[],
        max_experiments=None,
        dashboard=("127.0.0.1", 0),
    )
    home.ensure()
    policy = policy or Policy()
    with Ledger.open(home.ledger_file, policy) as ledger:
        yield Daemon(home, Identity.generate(), bytes(32), policy, Settings(), options, ledger)


@needs_chromium
def test_the_page_shows_each_new_record_without_a_reload(tmp_path):
    with peer_daemon(Home.locate(tmp_path / "node")) as daemon:
        trio.run(show_records_to_a_browser, daemon)


async def show_records_to_a_browser(daemon: Daemon) -> None:
    async with browser_on_page(daemon) as browser:
        await trio.to_thread.run_sync(browser.execute_script, "window.loadedOnce = true")
        await wait_for(lambda: "no results yet" in browser.page_source, "an empty leaderboard")
        for n in range(2):
            record = result(person(n), T0 + n, bpb=2.0 + n / 100, seed=n, track=daemon.track)
            assert daemon.ledger.add(record.raw) is not None  # as if a peer's run just arrived
            await wait_for(lambda r=record: r.hex_id[:10] in record_ids_shown(browser), f"record {n}")
        assert await trio.to_thread.run_sync(browser.execute_script, "return window.loadedOnce") is True
        picture = await wait_for(
            lambda: browser.execute_script(
                "const img = document.getElementById('progress');"
                "return img.complete && img.naturalWidth > 0 && img.src.endsWith('records=2') && img.src"
            ),
            "the progress picture of both runs",
        )
        assert "2 experiments, no accepted best yet" in browser.page_source
        png = await trio.to_thread.run_sync(lambda: urllib.request.urlopen(picture).read())
        assert png[:4] == b"\x89PNG"


HOSTILE_RATIONALE = "<img src=x onerror=\"document.title='owned'\"> <b>deeper</b> uses the budget better"


def idea(track: Track, ts_ms: int, diff: dict, rationale: str = HOSTILE_RATIONALE) -> Record:
    body = {"track": track.to_wire(), "parent": ROOT, "diff": diff, "rationale": rationale}
    return sign(person(1), "hypothesis", body, ts_ms)


def hypothesis_rows(browser, state: str) -> list[dict]:
    return browser.execute_script(
        f"return [...document.querySelectorAll('#hypotheses tr.{state}')].map((row) => ({{"
        "change: row.querySelector('td.change').textContent, verdict: row.querySelector('td.verdict').textContent,"
        "rationale: row.querySelector('td.rationale').textContent}))"
    )


@needs_chromium
def test_the_page_shows_a_hypothesis_open_then_answered_and_a_bad_one_with_its_reason_as_text(tmp_path):
    with peer_daemon(Home.locate(tmp_path / "node")) as daemon:
        trio.run(show_hypotheses_to_a_browser, daemon)


async def show_hypotheses_to_a_browser(daemon: Daemon) -> None:
    async with browser_on_page(daemon) as browser:
        await wait_for(lambda: "no hypotheses yet" in browser.page_source, "an empty hypotheses panel")
        for record in (
            result(person(0), T0, bpb=1.0, track=daemon.track),
            idea(daemon.track, T0 + 1, {"depth": 12}),
            idea(daemon.track, T0 + 2, {"warmup_ratio": 0.9}, "a long warmup"),  # over 1 with the warmdown
        ):
            assert daemon.ledger.add(record.raw) is not None  # as if a peer's records just arrived
        (opened,) = await wait_for(lambda: hypothesis_rows(browser, "open"), "the open hypothesis")
        assert opened == {"change": "depth 8->12", "verdict": "", "rationale": HOSTILE_RATIONALE}
        (invalid,) = await wait_for(lambda: hypothesis_rows(browser, "invalid"), "the invalid hypothesis")
        assert invalid["verdict"] == "does not apply: warmup_ratio + warmdown_ratio must not exceed 1"
        answer = result(person(2), T0 + 3, {"depth": 12}, bpb=1.1, seed=1, track=daemon.track)
        assert daemon.ledger.add(answer.raw) is not None
        (answered,) = await wait_for(lambda: hypothesis_rows(browser, "answered"), "the answered hypothesis")
        assert answered["verdict"] == "not better"
        # its estimate against its parent's: one lone run of a change is shrunk a little towards "no effect"
        assert "+0.099800 (+49.9σ)" in await trio.to_thread.run_sync(lambda: browser.page_source)
        markup = "return document.querySelectorAll('#hypotheses img, #hypotheses b').length + document.title"
        assert await trio.to_thread.run_sync(browser.execute_script, markup) == "0arnode"  # text, never HTML


def test_the_hypotheses_panel_is_rebuilt_only_when_the_ledger_grows(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", Policy()) as ledger:
        baseline = result(person(0), T0, bpb=1.0)
        ledger.add_many([baseline.raw, idea(baseline.track, T0 + 1, {"depth": 12}).raw])
        reader = LedgerReader(ledger.path, ledger.policy)
        dashboard = Dashboard(reader, {"status": dict, "peers": list})
        (panel,) = trio.run(dashboard.state)["hypotheses"]
        assert (panel["open"], panel["answered"], panel["invalid"]) == (1, 0, 0)
        assert trio.run(dashboard.state)["hypotheses"][0] is panel  # the same panel: nothing was re-read
        ledger.add(result(person(2), T0 + 2, {"depth": 12}, bpb=1.1, seed=1).raw)
        (panel,) = trio.run(dashboard.state)["hypotheses"]
        assert (panel["open"], panel["answered"]) == (0, 1) and panel["rows"][0]["answers"][0][
            "verdict"
        ] == "not better"
        reader.close()


def test_a_busy_port_costs_the_page_not_the_node(tmp_path):
    with peer_daemon(Home.locate(tmp_path / "node")) as daemon:
        trio.run(serve_on_a_taken_port, daemon)


async def serve_on_a_taken_port(daemon: Daemon) -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        daemon.options = DaemonOptions(**{**daemon.options.__dict__, "dashboard": taken.getsockname()})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.run)
            await wait_for(lambda: daemon.swarm.listen_addrs(), "the node listening", in_browser=False)
            assert daemon.dashboard_url is None
            nursery.cancel_scope.cancel()


def finding_rows(browser, kind: str) -> list[dict]:
    return browser.execute_script(
        f"return [...document.querySelectorAll('#findings tr.{kind}')].map((row) => ({{"
        "change: row.querySelector('td.change').textContent, text: row.textContent}))"
    )


def since_items(browser) -> list[str]:
    return browser.execute_script("return [...document.querySelectorAll('#since li')].map((item) => item.textContent)")


def since_text(browser) -> str:
    return browser.execute_script("return document.getElementById('since').textContent")


@needs_chromium
def test_the_page_shows_the_findings_and_what_changed_since_the_last_look(tmp_path):
    swarm = Swarm(TRACK, seed=1)
    swarm.explore(rounds=2)
    with peer_daemon(Home.locate(tmp_path / "node"), POLICY) as daemon:
        trio.run(show_findings_to_a_browser, daemon, records_of(swarm), tmp_path / "findings.png")


async def show_findings_to_a_browser(daemon: Daemon, records: list[Record], screenshot) -> None:
    first, later = records[:7], records[7:]  # after the first round, and the second one
    daemon.ledger.add_many([record.raw for record in first])
    async with browser_on_page(daemon) as browser:
        opened = await wait_for(lambda: finding_rows(browser, "finding"), "the open findings")
        assert [row["change"] for row in opened] == ["matrix_lr up", "weight_decay up"]
        assert all("open" in row["text"] for row in opened)
        dead = await wait_for(lambda: finding_rows(browser, "dead-end"), "the dead ends")
        assert [row["change"] for row in dead] == ["depth +2", "head_dim +64"] and "oom x1" in dead[1]["text"]
        assert "first visit" in await wait_for(lambda: since_text(browser), "the first visit")
        await trio.to_thread.run_sync(browser.refresh)  # the next look: nothing new since this one
        await wait_for(lambda: "nothing new" in since_text(browser), "nothing new since the first look")
        daemon.ledger.add_many([record.raw for record in later])  # as if the second round just arrived
        items = await wait_for(lambda: len(since_items(browser)) == 4 and since_items(browser), "the news")
        accepted = f"accepted on {TRACK.key}: matrix_lr up"
        assert items[0].startswith(accepted) and items[1:] == [
            f"1 of 5 new runs failed on {TRACK.key}",
            "head_dim +64: 1 more failed run",
            "finding matrix_lr up: open -> helps",
        ]
        (helping,) = await wait_for(lambda: finding_rows(browser, "keep"), "the helping finding")
        assert helping["change"] == "matrix_lr up" and TRACK.key in helping["text"]
        await trio.to_thread.run_sync(browser.set_window_size, 1400, 1600)
        await trio.to_thread.run_sync(browser.save_screenshot, str(screenshot))
        click = "document.querySelector('#since button').click()"
        await trio.to_thread.run_sync(browser.execute_script, click)  # mark all as seen
        await wait_for(lambda: "nothing new" in since_text(browser), "nothing new once marked as seen")
        await trio.to_thread.run_sync(browser.refresh)  # looked at: the next visit starts from here
        await wait_for(lambda: "nothing new" in since_text(browser), "nothing new on the next visit")
