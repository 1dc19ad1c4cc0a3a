#!/usr/bin/env python
"""PBT vs random search vs ASHA at equal total epochs, on a task where the lr schedule matters.

The task: the demo's MLP on scikit-learn's digits (scripts/train.py's data and model), plain
SGD with a constant learning rate and no scheduler, so a rate that is good early (large) is bad
late and the other way round; only a schedule gets both. Each method trains in this process
with the same planning functions the workflow uses: the seeded samples of
``snakesweep.search.sampling.expand``, PBT's ``generation_decision`` (exploit and explore) and
ASHA's ``asha_decision``. A PBT clone copies its parent's model and optimizer state in memory,
as the workflow's clone copies the checkpoint. Metric: validation cross-entropy (lower is
better) at the last epoch; the best trial's is reported.

    .venv/bin/python bench/pbt.py [seeds] [population] [epochs] [interval]   (default 3 8 16 2)

Random search trains the same ``population`` sampled configurations for ``epochs`` each (the
same total as PBT); ASHA (eta 3, rungs 1, 3, 9, epochs) starts new samples until it has used
the same total number of epochs.
"""

from __future__ import annotations

import copy
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

from snakesweep.search.pbt import PbtPlan, generation_decision
from snakesweep.search.pruning import asha_decision, rung_budgets
from snakesweep.search.sampling import expand
from snakesweep.search.space import parse_parameters

REPO = Path(__file__).resolve().parents[1]
SPACE = parse_parameters({"lr": {"kind": "loguniform", "low": 0.001, "high": 1.0}}, "random")
BATCH = 64


def _train_module():
    spec = importlib.util.spec_from_file_location("train", REPO / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = _train_module()
DATA = TRAIN.load_data(torch.device("cpu"))


class Member:
    """One configuration in training: model, optimizer, epochs done, last metric."""

    def __init__(self, tid: str, lr: float, init_seed: int) -> None:
        torch.manual_seed(init_seed)
        self.tid, self.lr, self.epochs = tid, lr, 0
        self.model = TRAIN.build_model(64, 2, 0.0)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.order = torch.Generator().manual_seed(init_seed)
        self.metric = float("nan")
        self.schedule = [lr]  # the rate of each generation (PBT)

    def train(self, epochs: int) -> float:
        x_train, y_train, x_val, y_val = DATA
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(epochs):
            self.model.train()
            for idx in torch.randperm(len(x_train), generator=self.order).split(BATCH):
                loss = loss_fn(self.model(x_train[idx]), y_train[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            self.epochs += 1
        self.model.eval()
        with torch.no_grad():
            self.metric = loss_fn(self.model(x_val), y_val).item()
        return self.metric

    def record(self) -> dict:
        ok = self.metric == self.metric and self.metric != float("inf")
        return {
            "trial_id": self.tid,
            "status": "completed" if ok else "diverged",
            "final": self.metric if ok else None,
            "params": {"lr": self.lr},
        }


def samples(seed: int, n: int) -> list[float]:
    return [p["lr"] for p in expand(SPACE, "random", n, seed)]


def random_search(seed: int, population: int, epochs: int) -> tuple[float, int]:
    members = [Member(f"{i:03d}", lr, i) for i, lr in enumerate(samples(seed, population))]
    finals = [m.train(epochs) for m in members]
    return _best(finals), population * epochs


def pbt(seed: int, population: int, epochs: int, interval: int) -> tuple[float, int, list]:
    plan = PbtPlan(interval, epochs // interval, 0.25, 0.25, ("lr",), seed)
    members = {
        f"{i:03d}": Member(f"{i:03d}", lr, i) for i, lr in enumerate(samples(seed, population))
    }
    for generation in range(plan.generations):
        for member in members.values():
            member.train(interval)
        if generation == plan.generations - 1:
            break
        records = [m.record() for m in members.values()]
        decision = generation_decision(records, generation, plan, SPACE, "val_loss", "min")
        schedules = {tid: list(m.schedule) for tid, m in members.items()}
        for entry in decision["members"]:
            member = members[entry["member"]]
            if entry["parent"] != entry["member"]:
                parent = members[entry["parent"]]
                member.model.load_state_dict(copy.deepcopy(parent.model.state_dict()))
                member.optimizer.load_state_dict(copy.deepcopy(parent.optimizer.state_dict()))
                member.order.set_state(parent.order.get_state())
            member.schedule = [*schedules[entry["parent"]], entry["params"]["lr"]]
            member.lr = entry["params"]["lr"]
            for group in member.optimizer.param_groups:  # what session.apply_hparams does
                group["lr"] = member.lr
    best = min(members.values(), key=lambda m: (m.metric, m.tid))
    return _best([m.metric for m in members.values()]), population * epochs, best


def asha(seed: int, total: int, epochs: int) -> tuple[float, int, int]:
    rungs = rung_budgets(1, epochs, 3)
    reported: dict[int, list[float]] = {r: [] for r in rungs}
    used, finals, index = 0, [], 0
    lrs = samples(seed, 10_000)
    while used < total:
        member = Member(f"{index:03d}", lrs[index], index)
        index += 1
        for rung in rungs:
            if used + rung - member.epochs > total:
                break  # the budget cannot take this rung: ASHA ends here
            used += rung - member.epochs
            score = member.train(rung - member.epochs)
            score = score if score == score else None
            go_on = asha_decision(score, reported[rung], 3, "min", 3)
            reported[rung].append(score)
            if rung == epochs:
                finals.append(member.metric)
            if not go_on:
                break
    return _best(finals), used, index


def _best(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return min(finite) if finite else float("nan")


def main() -> None:
    seeds, population, epochs, interval = (
        int(a) for a in (sys.argv[1:] + ["3", "8", "16", "2"][len(sys.argv) - 1 :])[:4]
    )
    torch.set_num_threads(1)
    print(
        f"digits MLP, SGD without a schedule, lr ~ loguniform(0.001, 1); population {population}, "
        f"{epochs} epochs, PBT interval {interval}; metric: best final val_loss (lower is better)"
    )
    print(
        f"{'seed':>4}  {'random':>8}  {'asha':>8}  {'pbt':>8}  epochs r/a/p     asha trials  pbt winner's lr per generation"
    )
    rows = []
    for seed in range(seeds):
        started = time.perf_counter()
        r, r_epochs = random_search(seed, population, epochs)
        a, a_epochs, a_trials = asha(seed, r_epochs, epochs)
        p, p_epochs, winner = pbt(seed, population, epochs, interval)
        rows.append((r, a, p))
        print(
            f"{seed:>4}  {r:8.4f}  {a:8.4f}  {p:8.4f}  {r_epochs}/{a_epochs}/{p_epochs}"
            f"{'':>6}{a_trials:>5}        {' '.join(f'{lr:.3g}' for lr in winner.schedule)}"
            f"  ({time.perf_counter() - started:.0f} s)"
        )
    for name, column in zip(("random", "asha", "pbt"), zip(*rows, strict=True), strict=True):
        print(f"median {name:>6}: {statistics.median(column):.4f}")
    wins = sum(p < min(r, a) for r, a, p in rows)
    print(f"PBT best of the three in {wins} of {len(rows)} seeds")


if __name__ == "__main__":
    main()
