#!/usr/bin/env python
"""Does strategy tpe find better trials than random at equal n_trials? Side by side with
Optuna's own sequential TPE, the upper reference.

Two real training tasks, evaluated in this process (no Snakemake: the search is what is
measured, and the rounds are made by the same functions the workflow's checkpoint calls):

* ``digits``: the demo task (scripts/train.py's data and model: an MLP on scikit-learn's
  digits, Adam), the demo config's search space, ``val_accuracy`` (max);
* ``diabetes``: tests/fixtures/regress_train.py's task (a one-hidden-layer regression on
  scikit-learn's diabetes data, SGD), ``val_rmse`` (min): the metric goes the other way.

Methods, each with the same ``n_trials`` and seeds:

* ``random``: snakesweep's random strategy (``search.sampling.expand``);
* ``tpe q=4`` / ``tpe q=8``: snakesweep's rounds (``search.sweep.round_maker`` ->
  ``RoundMaker.make``), each round made from the records of every earlier round;
* ``optuna sequential``: ``study.optimize`` with ``TPESampler(seed=seed)`` in one process
  (rounds of 1, Optuna's defaults, which the tpe block's defaults are).

Every trial trains with torch's seed fixed, so a configuration always scores the same; the
scores are cached by trial id. Prints, per task and method: the median best final metric
over the seeds, its spread (min..max), and how many trials the method needed to reach
random's best of the same seed (median; "n/r" counts seeds where it never did).

Usage: python bench/search.py [--trials 24] [--seeds 5] [--epochs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

from snakesweep.search.rounds import round_sizes  # noqa: E402
from snakesweep.search.sampling import expand  # noqa: E402
from snakesweep.search.space import parse_parameters  # noqa: E402
from snakesweep.search.sweep import round_maker  # noqa: E402
from snakesweep.search.trial_id import trial_id  # noqa: E402

DIGITS_SPACE = {
    "lr": {"kind": "loguniform", "low": 0.0003, "high": 0.3},
    "batch_size": {"kind": "choice", "values": [32, 64, 128]},
    "width": {"kind": "int", "low": 16, "high": 256, "log": True},
    "depth": {"kind": "choice", "values": [1, 2]},
    "weight_decay": {"kind": "loguniform", "low": 1.0e-6, "high": 1.0e-2},
    "optimizer": {"kind": "fixed", "value": "adam"},
}
DIABETES_SPACE = {
    "lr": {"kind": "loguniform", "low": 0.0001, "high": 1.0},
    "hidden": {"kind": "int", "low": 2, "high": 128, "log": True},
    "batch_size": {"kind": "choice", "values": [16, 32, 64, 128]},
}


def _demo_module() -> Any:
    spec = importlib.util.spec_from_file_location("demo_train", REPO / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digits_task(epochs: int) -> Callable[[dict[str, Any]], float]:
    demo = _demo_module()
    x_train, y_train, x_val, y_val = demo.load_data(torch.device("cpu"))

    def train(p: dict[str, Any]) -> float:
        torch.manual_seed(0)
        model = demo.build_model(int(p["width"]), int(p["depth"]), 0.0)
        opt = torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(x_train), generator=gen).split(int(p["batch_size"])):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            return float((model(x_val).argmax(1) == y_val).float().mean())

    return train


def diabetes_task(epochs: int) -> Callable[[dict[str, Any]], float]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32).unsqueeze(1)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    train_x, train_y, val_x, val_y = x[:350], y[:350], x[350:], y[350:]

    def train(p: dict[str, Any]) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(10, int(p["hidden"])),
            torch.nn.ReLU(),
            torch.nn.Linear(int(p["hidden"]), 1),
        )
        opt = torch.optim.SGD(model.parameters(), lr=p["lr"])
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs * 4):
            for idx in torch.randperm(len(train_x), generator=gen).split(int(p["batch_size"])):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(train_x[idx]), train_y[idx]).backward()
                opt.step()
        with torch.no_grad():
            rmse = float(torch.sqrt(torch.nn.functional.mse_loss(model(val_x), val_y)))
        return rmse if rmse == rmse and rmse < 1e6 else float("inf")

    return train


class Objective:
    """A task's training with a cache by trial id (a configuration always scores the same)."""

    def __init__(self, train: Callable[[dict[str, Any]], float]) -> None:
        self.train = train
        self.cache: dict[str, float] = {}
        self.evaluations = 0

    def __call__(self, params: dict[str, Any]) -> float:
        key = trial_id(params)
        if key not in self.cache:
            self.evaluations += 1
            self.cache[key] = self.train(params)
        return self.cache[key]


def _record(entry: dict[str, Any], value: float) -> dict[str, Any]:
    finite = value == value and abs(value) != float("inf")
    return {
        "trial_id": entry["trial_id"],
        "status": "completed" if finite else "diverged",
        "final": value if finite else None,
        "params": entry["params"],
        "history": [],
    }


def run_random(config: dict, objective: Objective, n: int, seed: int) -> list[float]:
    params = parse_parameters(config["parameters"], "random")
    return [objective(p) for p in expand(params, "random", n, seed)]


def run_rounds(config: dict, objective: Objective, n: int, seed: int, q: int) -> list[float]:
    maker = round_maker({**config, "strategy": "tpe", "seed": seed})
    records, values = [], []
    for k, size in enumerate(round_sizes(n, q, {})):
        content = maker.make(k, size, records)
        for entry in content["trials"]:
            value = objective(entry["params"])
            values.append(value)
            records.append(_record(entry, value))
    return values


def run_sequential(config: dict, objective: Objective, n: int, seed: int) -> list[float]:
    import optuna

    from snakesweep.search.rounds import ask_params

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a diverged trial is a FAIL, quietly
    space = tuple(parse_parameters(config["parameters"], "tpe"))
    fixed = {p.name: p.value for p in space if p.kind == "fixed"}
    study = optuna.create_study(
        direction="maximize" if config["mode"] == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    values = []

    def run(trial: Any) -> float:
        value = objective({**fixed, **ask_params(trial, space), "epochs": config["epochs"]})
        values.append(value)
        return value if value != float("inf") else float("nan")

    study.optimize(run, n_trials=n)
    return values


def best_curve(values: list[float], mode: str) -> list[float]:
    out, best = [], None
    for v in values:
        if v == v and abs(v) != float("inf"):
            best = v if best is None else (max(best, v) if mode == "max" else min(best, v))
        out.append(best if best is not None else float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tasks", default="digits,diabetes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = {
        "digits": ("val_accuracy", "max", DIGITS_SPACE, digits_task),
        "diabetes": ("val_rmse", "min", DIABETES_SPACE, diabetes_task),
    }
    methods = {
        "random": lambda c, o, n, s: run_random(c, o, n, s),
        "tpe q=4": lambda c, o, n, s: run_rounds(c, o, n, s, 4),
        "tpe q=8": lambda c, o, n, s: run_rounds(c, o, n, s, 8),
        "optuna sequential": lambda c, o, n, s: run_sequential(c, o, n, s),
    }
    print(
        f"n_trials={args.trials}, seeds 0..{args.seeds - 1}, epochs={args.epochs}; "
        "tpe: Optuna 5.0 TPESampler, defaults (n_startup_trials=10, multivariate, constant liar)"
    )
    for name in args.tasks.split(","):
        metric, mode, space, make = tasks[name]
        objective = Objective(make(args.epochs))
        config = {"metric": metric, "mode": mode, "epochs": args.epochs, "parameters": space}
        started = time.time()
        curves: dict[str, list[list[float]]] = {m: [] for m in methods}
        for seed in range(args.seeds):
            for method, run in methods.items():
                curves[method].append(best_curve(run(config, objective, args.trials, seed), mode))
        print(
            f"\n{name} ({metric}, {mode}; {objective.evaluations} trainings, "
            f"{time.time() - started:.0f} s)"
        )
        print("| method | median best | spread (min..max) | trials to reach random's best |")
        print("|---|---:|---:|---:|")
        for method, per_seed in curves.items():
            finals = [c[-1] for c in per_seed]
            reach = []
            for seed, curve in enumerate(per_seed):
                target = curves["random"][seed][-1]
                hit = [
                    i + 1
                    for i, v in enumerate(curve)
                    if v == v and (v >= target if mode == "max" else v <= target)
                ]
                reach.append(hit[0] if hit else None)
            reached = [r for r in reach if r is not None]
            missed = len(reach) - len(reached)
            reach_text = (f"{statistics.median(reached):g}" if reached else "-") + (
                f" ({missed} n/r)" if missed else ""
            )
            print(
                f"| {method} | {statistics.median(finals):.4f} | "
                f"{min(finals):.4f}..{max(finals):.4f} | {reach_text} |"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
