"""A surrogate of the published autoresearch HPO landscape, to race search methods on.

The autoresearch-automl data (../shared/hpo/README.md) holds ~10,000 real 5-minute training runs over 14
hyperparameters. Racing a search on it needs a value for configs nobody ran, so this file fits, once,
a regressor of val_bpb on the successful runs ("the truth" of the benchmark) and a classifier of failure,
and exposes them as a noisy, failure-prone measurement. The surrogate is one model of the landscape:
`Landscape.validation` states its held-out error, which a comparison of close searches must quote.
"""

import hashlib
import json
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from platformdirs import user_cache_dir
from scipy.stats import spearmanr
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

EXCLUDED_METHOD = "Karpathy Agent (Code)"  # its runs also depend on code edits that are not recorded
SUCCESS_SECONDS = 300.0  # a successful run is charged its full 5-minute budget
SEQ_LEN = 2048  # tokens per sequence: total_batch_tokens must cover one device batch
FOLDS = 5
TOP_FRACTION = 0.10  # "the best 10%" of successful runs, where the race is decided
N_JOBS = 2
CACHE_VERSION = 3  # bump when the features or models change, so stale caches are ignored


@dataclass(frozen=True)
class Knob:
    """One dimension of the benchmark's search space, in our knob names."""

    name: str
    kind: str  # "int" | "log" | "linear" | "pow2" | "choice"
    lo: float = 0.0
    hi: float = 0.0
    choices: tuple[str, ...] = ()


BOX: tuple[Knob, ...] = (
    Knob("depth", "int", 4, 24),
    Knob("aspect_ratio", "int", 32, 128),
    Knob("head_dim", "pow2", 64, 256),
    Knob("device_batch_size", "pow2", 32, 256),
    Knob("total_batch_tokens", "pow2", 65536, 2097152),
    Knob("embedding_lr", "log", 0.01, 2.0),
    Knob("unembedding_lr", "log", 0.0005, 0.05),
    Knob("matrix_lr", "log", 0.005, 0.2),
    Knob("scalar_lr", "log", 0.05, 2.0),
    Knob("weight_decay", "linear", 0.0, 0.5),
    Knob("warmup_ratio", "linear", 0.0, 0.3),
    Knob("warmdown_ratio", "linear", 0.1, 0.8),
    Knob("final_lr_frac", "linear", 0.0, 0.2),
    Knob("window_pattern", "choice", choices=("SSSL", "SSLL", "SLSL", "LLLL", "SSSS", "LSSL")),
)

DEFAULT_PARAMS: dict[str, object] = {
    "depth": 8,
    "aspect_ratio": 64,
    "head_dim": 128,
    "device_batch_size": 128,
    "total_batch_tokens": 524288,
    "embedding_lr": 0.6,
    "unembedding_lr": 0.004,
    "matrix_lr": 0.04,
    "scalar_lr": 0.5,
    "weight_decay": 0.2,
    "warmup_ratio": 0.0,
    "warmdown_ratio": 0.5,
    "final_lr_frac": 0.0,
    "window_pattern": "SSSL",
}

DATA_NAMES = {"total_batch_tokens": "TOTAL_BATCH_SIZE"}  # the data's upper-case name where not just upper()


def default_params() -> dict[str, object]:
    """autoresearch's default config: the first trial of every method in the data."""
    return dict(DEFAULT_PARAMS)


def knob_in_range(knob: Knob, value: object) -> bool:
    if knob.kind == "choice":
        return value in knob.choices
    if isinstance(value, bool) or not isinstance(value, int | float) or not knob.lo <= value <= knob.hi:
        return False
    if knob.kind == "int":
        return float(value).is_integer()
    if knob.kind == "pow2":
        return float(value).is_integer() and int(value) & (int(value) - 1) == 0
    return True


def in_box(params: dict) -> bool:
    """Whether params name every knob of the box, in range, and satisfy the batch rule."""
    if set(params) != {knob.name for knob in BOX}:
        return False
    if not all(knob_in_range(knob, params[knob.name]) for knob in BOX):
        return False
    return params["total_batch_tokens"] >= params["device_batch_size"] * SEQ_LEN


def features(params: dict) -> list[float]:
    """Model inputs: sizes and rates on a log2 scale, ratios linear, the window pattern one-hot.

    Three derived sizes (model width, parameter scale, gradient-accumulation steps) let the trees
    split on what the trainer actually feels rather than on products of knobs.
    """
    row = []
    for knob in BOX:
        value = params[knob.name]
        if knob.kind == "choice":
            row += [float(value == choice) for choice in knob.choices]
        elif knob.kind == "linear":
            row.append(float(value))
        else:
            row.append(math.log2(value))
    width = params["depth"] * params["aspect_ratio"]
    row.append(math.log2(width))
    row.append(math.log2(params["depth"] * width * width))
    row.append(math.log2(params["total_batch_tokens"] / (params["device_batch_size"] * SEQ_LEN)))
    return row


def feature_matrix(configs: list[dict]) -> np.ndarray:
    return np.array([features(params) for params in configs], dtype=float)


@dataclass(frozen=True)
class Measurement:
    """One simulated run: val_bpb (None when it failed) and the GPU-seconds it was charged."""

    val_bpb: float | None
    seconds: float


@dataclass(frozen=True)
class RegressorScore:
    """Held-out (5-fold) error of one candidate regressor of val_bpb."""

    name: str
    mae: float
    spearman: float
    top_mae: float  # among the data's best 10% of successful runs
    top_spearman: float
    top_bias: float  # mean(predicted - measured) there: trees shrink the best configs toward their neighbours


@dataclass(frozen=True)
class Validation:
    """How far to trust the surrogate: cross-validated error of the chosen models."""

    chosen: str
    regressors: tuple[RegressorScore, ...]
    top_threshold: float  # val_bpb at the boundary of the best 10%
    failure_auc: float
    successes: int
    failures: int

    def report(self) -> str:
        lines = [
            f"surrogate fitted on {self.successes} successful and {self.failures} failed runs "
            f"({FOLDS}-fold cross-validation grouped by config; best 10% = val_bpb < {self.top_threshold:.4f})"
        ]
        for s in self.regressors:
            mark = " <- chosen" if s.name == self.chosen else ""
            lines.append(
                f"  {s.name:<14} MAE {s.mae:.4f}  rank corr {s.spearman:.3f}  | best 10%: "
                f"MAE {s.top_mae:.4f}  rank corr {s.top_spearman:.3f}  bias {s.top_bias:+.4f}{mark}"
            )
        lines.append(f"  failure classifier AUC {self.failure_auc:.4f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Trials:
    """The usable runs of the data file, as our knob dicts."""

    configs: list[dict]
    val_bpb: np.ndarray  # NaN where the run failed
    success: np.ndarray
    fail_seconds: float


def load_trials(path: Path) -> Trials:
    data = json.loads(path.read_text())
    rows = [
        trial
        for method, seeds in data.items()
        if method != EXCLUDED_METHOD
        for runs in seeds.values()
        for trial in runs
    ]
    configs = [{knob.name: row[DATA_NAMES.get(knob.name, knob.name.upper())] for knob in BOX} for row in rows]
    success = np.array([bool(row["success"]) for row in rows])
    val_bpb = np.array([row["val_bpb"] if ok else np.nan for row, ok in zip(rows, success, strict=True)], dtype=float)
    fail_seconds = float(np.median([row["wt"] for row, ok in zip(rows, success, strict=True) if not ok]))
    return Trials(configs, val_bpb, success, fail_seconds)


def candidate_regressors() -> dict[str, object]:
    """Modest forests: the fit (cross-validation included) must stay well under a minute on 2 cores."""
    return {
        "extra_trees": ExtraTreesRegressor(n_estimators=100, min_samples_leaf=2, n_jobs=N_JOBS, random_state=0),
        "random_forest": RandomForestRegressor(
            n_estimators=100, min_samples_leaf=2, max_features=0.5, n_jobs=N_JOBS, random_state=0
        ),
        "hist_boosting": HistGradientBoostingRegressor(max_iter=400, learning_rate=0.05, random_state=0),
    }


def failure_classifier() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, n_jobs=N_JOBS, random_state=0)


def config_groups(x: np.ndarray) -> np.ndarray:
    """One group per distinct config, so a config run repeatedly (the default: 44 times) never helps predict itself."""
    return np.unique(x, axis=0, return_inverse=True)[1].ravel()


def folds(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(GroupKFold(FOLDS, shuffle=True, random_state=0).split(x, groups=config_groups(x)))


def score_regressor(name: str, model: object, x: np.ndarray, y: np.ndarray, top: np.ndarray) -> RegressorScore:
    predicted = np.empty_like(y)
    for train, test in folds(x):
        predicted[test] = model.fit(x[train], y[train]).predict(x[test])
    error = np.abs(predicted - y)
    return RegressorScore(
        name,
        mae=float(error.mean()),
        spearman=float(spearmanr(predicted, y).statistic),
        top_mae=float(error[top].mean()),
        top_spearman=float(spearmanr(predicted[top], y[top]).statistic),
        top_bias=float((predicted - y)[top].mean()),
    )


def failure_auc(x: np.ndarray, failed: np.ndarray) -> float:
    predicted = np.empty(len(failed))
    for train, test in folds(x):
        predicted[test] = failure_classifier().fit(x[train], failed[train]).predict_proba(x[test])[:, 1]
    return float(roc_auc_score(failed, predicted))


@dataclass(frozen=True)
class FittedModels:
    """What the cache holds: the chosen models and their validation."""

    regressor: object
    classifier: RandomForestClassifier
    fail_seconds: float
    validation: Validation


def fit_models(trials: Trials) -> FittedModels:
    x = feature_matrix(trials.configs)
    ok = trials.success
    y = trials.val_bpb[ok]
    threshold = float(np.quantile(y, TOP_FRACTION))
    top = y <= threshold
    candidates = candidate_regressors()
    scores = tuple(score_regressor(name, model, x[ok], y, top) for name, model in candidates.items())
    # the race is decided among the best configs, so choose on held-out error there
    chosen = min(scores, key=lambda s: s.top_mae).name
    regressor = candidates[chosen].fit(x[ok], y)
    classifier = failure_classifier().fit(x, ~ok)
    for model in (regressor, classifier):
        if hasattr(model, "n_jobs"):
            model.n_jobs = 1  # thread start-up would dominate the race's many small predictions
    validation = Validation(chosen, scores, threshold, failure_auc(x, ~ok), int(ok.sum()), int((~ok).sum()))
    return FittedModels(regressor, classifier, trials.fail_seconds, validation)


class Landscape:
    """The benchmark's ground truth: a fitted val_bpb surface, a failure probability and run costs."""

    def __init__(self, data_path: Path, cache_dir: Path | None = None) -> None:
        self.trials = load_trials(data_path)
        self._best_known: float | None = None
        digest = hashlib.sha256(data_path.read_bytes()).hexdigest()
        # our own cache directory, not a shared temp one: a pickle another user could plant would run code
        cache = Path(cache_dir or user_cache_dir("arnode")) / f"hpo_landscape_v{CACHE_VERSION}_{digest[:16]}.pkl"
        if cache.exists():
            self.models: FittedModels = pickle.loads(cache.read_bytes())
        else:
            self.models = fit_models(self.trials)
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(pickle.dumps(self.models))
            partial.replace(cache)  # atomic, so parallel workers never read half a file

    @property
    def fail_seconds(self) -> float:
        return self.models.fail_seconds

    def validation(self) -> Validation:
        return self.models.validation

    def true_bpb_many(self, configs: list[dict]) -> np.ndarray:
        return self.models.regressor.predict(feature_matrix(configs))

    def p_fail_many(self, configs: list[dict]) -> np.ndarray:
        return self.models.classifier.predict_proba(feature_matrix(configs))[:, 1]

    def true_bpb(self, params: dict) -> float:
        return float(self.true_bpb_many([params])[0])

    def p_fail(self, params: dict) -> float:
        return float(self.p_fail_many([params])[0])

    def measure(self, params: dict, rng: np.random.Generator, sigma: float) -> Measurement:
        """One run: a failure with probability p_fail, else the true value plus run-to-run noise."""
        return self.draw(self.true_bpb(params), self.p_fail(params), rng, sigma)

    def draw(self, true_bpb: float, p_fail: float, rng: np.random.Generator, sigma: float) -> Measurement:
        """One run of a config whose truth and failure chance the caller already holds."""
        if rng.random() < p_fail:
            return Measurement(None, self.fail_seconds)
        return Measurement(true_bpb + rng.normal(0.0, sigma), SUCCESS_SECONDS)

    def best_known(self) -> float:
        """The lowest true value over every config the data ran successfully within the box."""
        if self._best_known is None:  # the race asks at every step: compute once
            ok = self.trials.success
            configs = [c for c, good in zip(self.trials.configs, ok, strict=True) if good and in_box(c)]
            self._best_known = float(self.true_bpb_many(configs).min())
        return self._best_known
