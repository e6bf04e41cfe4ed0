"""A running experiment as people see it: the terminal's live view, and the page's running panel in Chromium."""

from pathlib import Path

import pytest
import trio
from rich.console import Console

from node.daemon import Daemon, DaemonOptions
from node.home import Home
from node.live import _worker_line
from node.research.run_progress import ProgressTracker
from node.settings import Settings
from node.store.ledger import Ledger
from protocol.identity import Identity
from protocol.policy import Policy
from tests.node.test_dashboard import browser_on_page, needs_chromium
from trainer.train import Budget, Stats, evaluating_line, progress_line

TRAINING_SEEN_WITHIN_S = 300  # a busy 2-core box: torch's import, a tokenizer, the first steps of the small model


def shown(worker: dict) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(_worker_line(worker))
    return console.export_text()


def worker_running(progress: dict | None) -> dict:
    current = {"kind": "explore", "config": "2782f7d5f4a1", "seed": 3, "started": 0.0, **(progress or {})}
    return {"name": "cpu", "current": current, "idle_reason": "", "experiments": 0, "last": None}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kind", ["tokens", "steps", "seconds"])
def test_the_terminal_shows_a_bar_time_in_and_time_left_for_every_budget_kind(kind):
    clock = Clock()
    tracker, budget, stats = ProgressTracker(clock), Budget(kind, 100), Stats()
    assert "starting, 0 s in" in shown(worker_running(tracker.progress().to_status()))
    for _ in range(60):  # a step a second, one unit of each budget kind
        clock.now += 1
        stats.steps, stats.tokens, stats.train_seconds = stats.steps + 1, stats.tokens + 1, stats.train_seconds + 1
        tracker.note(progress_line(stats, budget, loss=4.25, multiplier=1.0, step_seconds=1.0))
    line = shown(worker_running(tracker.progress().to_status()))
    assert "explore 2782f7d5f4 seed 3" in line and "━" in line  # the bar
    assert "training 60.0%, step 60, loss 4.2500, 60 s in, about 40 s left" in line
    tracker.note(evaluating_line(stats))
    assert "evaluating 100.0%, step 60, loss 4.2500, 60 s in" in shown(worker_running(tracker.progress().to_status()))


def test_the_terminal_says_when_a_finished_run_is_being_recorded():
    assert "recording the result" in shown(worker_running(None))


def running_panel(browser) -> dict:
    return browser.execute_script(
        "const run = document.querySelector('#running .run');"
        "return run && {title: run.querySelector('h3').textContent,"
        " words: run.querySelector('.progress-words').textContent,"
        " bar: run.querySelector('.bar > div').style.width,"
        " points: (run.querySelector('svg.loss polyline') || {getAttribute: () => ''})"
        ".getAttribute('points').split(' ').filter(Boolean).length}"
    )


@pytest.mark.process  # a real node, its trainer and a real browser
@needs_chromium
def test_the_page_shows_each_running_experiment_with_its_progress_and_loss_curve(tmp_path: Path):
    home = Home.locate(tmp_path / "node")
    home.ensure()
    policy = Policy(budget_kind="tokens", budget=2_000_000)  # minutes on a CPU: the end of the test stops it
    options = DaemonOptions(
        listen="/ip4/127.0.0.1/tcp/0",
        bootstrap=[],
        device="cpu",
        workers=[("cpu", None)],
        max_experiments=1,
        dashboard=("127.0.0.1", 0),
    )
    with Ledger.open(home.ledger_file, policy) as ledger:
        daemon = Daemon(home, Identity.generate(), bytes(32), policy, Settings(), options, ledger)
        trio.run(watch_a_run_in_a_browser, daemon, tmp_path / "running.png")


async def watch_a_run_in_a_browser(daemon: Daemon, screenshot: Path) -> None:
    async with browser_on_page(daemon) as browser:
        with trio.fail_after(TRAINING_SEEN_WITHIN_S):
            while not ((panel := await trio.to_thread.run_sync(running_panel, browser)) and panel["points"] >= 3):
                await trio.sleep(1)
        current = daemon.status()["workers"][0]["current"]  # what `arnode status` and the terminal show
        assert panel["title"] == f"cpu: baseline {current['config'][:10]} seed {current['seed']}"
        assert current["phase"] == "training" and len(current["curve"]) >= panel["points"]
        assert panel["words"].startswith("training ") and " left" in panel["words"] and "step " in panel["words"]
        assert 0 < float(panel["bar"].rstrip("%")) < 100
        await trio.to_thread.run_sync(browser.set_window_size, 1200, 700)
        await trio.to_thread.run_sync(browser.save_screenshot, str(screenshot))
