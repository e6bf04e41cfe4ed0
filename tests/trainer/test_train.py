"""The trainer as the node runs it: ``python -m trainer`` in a subprocess, on the embedded corpus."""

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.conftest import tiny_config
from trainer.corpus import Corpus
from trainer.device import open_device
from trainer.evaluate import val_bpb
from trainer.hardware import hardware_of
from trainer.model import GPT, gpt_config
from trainer.result import TrainResult
from trainer.spec import check_spec
from trainer.tokenizer import token_bytes

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

ROOT = Path(__file__).resolve().parents[2]


def run_trainer(spec: Path, out: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "trainer", "--spec", str(spec), "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def unigram_bpb(corpus: Corpus, rows: np.ndarray) -> float:
    """Bits per byte of the validation targets under the training split's token frequencies."""
    counts = np.bincount(corpus.split_tokens("train"), minlength=corpus.encoding.n_vocab) + 1.0
    nats = -np.log(counts / counts.sum())
    targets = rows[:, 1:].reshape(-1)
    sizes = np.array(token_bytes(corpus.encoding))[targets]
    return float(nats[targets][sizes > 0].sum() / (math.log(2) * sizes.sum()))


def test_thirty_cpu_steps_beat_the_unigram_baseline_by_a_wide_margin(write_spec, tmp_path):
    spec_path = write_spec(tiny_config())
    done = run_trainer(spec_path, tmp_path / "result.json")
    assert done.returncode == 0, done.stderr
    result = TrainResult.from_json(json.loads((tmp_path / "result.json").read_text()))
    spec = check_spec(json.loads(spec_path.read_text()))
    corpus = Corpus(spec)
    val_rows, holdout_rows = corpus.frozen_rows(spec.eval_split)
    assert result.outcome == "ok" and result.steps == 30
    assert result.val_bpb < unigram_bpb(corpus, val_rows) - 0.3, (result.val_bpb, unigram_bpb(corpus, val_rows))
    assert result.test_bpb < unigram_bpb(corpus, holdout_rows) - 0.3
    assert result.tokens == 30 * 2048 and result.hardware == hardware_of("cpu")
    assert "\nval_bpb:          " in done.stdout and "\nnum_steps:        30\n" in done.stdout


def test_a_config_made_to_explode_ends_as_diverged(write_spec, tmp_path):
    wild = tiny_config(matrix_lr=1.0, embedding_lr=10.0, unembedding_lr=1.0, logit_softcap=0.0, adam_beta2=0.0)
    done = run_trainer(write_spec(wild, budget=200), tmp_path / "result.json")
    assert done.returncode == 0, done.stderr
    result = TrainResult.from_json(json.loads((tmp_path / "result.json").read_text()))
    assert result.outcome == "diverged" and result.val_bpb is None and result.test_bpb is None
    assert result.steps < 200 and "loss" in result.error


def test_an_invalid_spec_exits_2_with_one_line_and_no_result(write_spec, tmp_path):
    done = run_trainer(write_spec(tiny_config(), device="tpu"), tmp_path / "result.json")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "device" in done.stderr
    assert not (tmp_path / "result.json").exists()


def signal_once_training(spec: Path, out: Path, sig: signal.Signals) -> tuple[int, str]:
    """Start the trainer, send ``sig`` once it prints its first step line; its exit code and its output."""
    command = [sys.executable, "-m", "trainer", "--spec", str(spec), "--out", str(out)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = child.stdout.readline()
        while first and not first.startswith("step "):
            first = child.stdout.readline()
        assert first.startswith("step "), "the trainer never started training"
    finally:
        child.send_signal(sig)
        rest, _ = child.communicate(timeout=60)
    return child.returncode, first + rest


def test_a_trainer_killed_from_outside_leaves_no_result(write_spec, tmp_path):
    out = tmp_path / "result.json"
    signal_once_training(write_spec(tiny_config(), "seconds", 600), out, signal.SIGKILL)
    assert not out.exists() and not list(tmp_path.glob(".result.json*"))


def test_a_trainer_told_to_stop_writes_what_it_measured_as_killed(write_spec, tmp_path):
    out = tmp_path / "result.json"
    code, output = signal_once_training(write_spec(tiny_config(), "tokens", 10_000_000), out, signal.SIGTERM)
    result = TrainResult.from_json(json.loads(out.read_text()))
    assert code == 0 and result.outcome == "killed" and result.error == "stopped by SIGTERM"
    assert result.steps >= 1 and result.tokens == 2048 * result.steps and result.val_bpb is None
    assert result.last_loss is not None and 0 < result.last_loss < 10 and result.hardware == hardware_of("cpu")
    assert output.rstrip().endswith("outcome:          killed\nerror:            stopped by SIGTERM")


def test_the_same_weights_always_score_the_same(write_spec):
    spec = check_spec(json.loads(write_spec(tiny_config()).read_text()))
    device = open_device("cpu", "off")
    corpus = Corpus(spec)
    rows = corpus.eval_rows(spec.eval_split)
    torch.manual_seed(0)
    model = GPT(gpt_config(spec.config, corpus.encoding.n_vocab))
    model.init_weights()
    sizes = torch.tensor(token_bytes(corpus.encoding))
    scores = [val_bpb(model, rows, sizes, spec.eval_split.batch_rows, device.precision()) for _ in range(2)]
    assert scores[0] == scores[1] and 0 < scores[0] < 20


def test_the_holdout_rows_are_disjoint_from_the_eval_rows_and_from_training(write_spec):
    spec = check_spec(json.loads(write_spec(tiny_config()).read_text()))
    corpus = Corpus(spec)
    val_rows, holdout_rows = corpus.frozen_rows(spec.eval_split)
    assert len(holdout_rows) == spec.eval_split.holdout_tokens // spec.eval_split.seq_len
    # every row starts at a document: its first 16 tokens identify that document
    starts = {tuple(row[:16]) for row in val_rows}
    assert not starts & {tuple(row[:16]) for row in holdout_rows}
    train = corpus.split_tokens("train")
    windows = {tuple(train[i : i + 16]) for i in np.flatnonzero(train == corpus.bos)}
    assert not windows & {tuple(row[:16]) for row in holdout_rows}
