"""Population based training's pure rules, its config checks, the checkpoint copy and the
session's ``apply_hparams`` (the workflow runs are in test_pbt_workflow.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from snakesweep.config_check import check_config
from snakesweep.job.pbt_generation import clone_checkpoint
from snakesweep.search.pbt import (
    PbtPlan,
    ancestry,
    explore,
    generation_decision,
    perturb,
    rank_members,
    replay_schedule,
)
from snakesweep.search.space import ConfigError, Parameter
from snakesweep.search.sweep import build_sweep
from snakesweep.session import TrialSession
from snakesweep.session.checkpoint import list_checkpoints, load_latest, save_checkpoint
from snakesweep.store.trial_folder import read_metrics, write_metrics

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
LR = Parameter("lr", "loguniform", low=0.001, high=0.1, log=True)
WIDTH = Parameter("width", "int", low=8, high=10)
OPT = Parameter("opt", "choice", values=("sgd", "adam", "adamw"))
PLAN = PbtPlan(
    interval=2, generations=3, quantile=0.25, resample_probability=0.25, mutate=("lr",), seed=7
)


def config(**overrides):
    base = {
        "metric": "acc",
        "mode": "max",
        "epochs": 4,
        "n_trials": 4,
        "script": str(REPO / "scripts" / "train.py"),
        "parameters": {"lr": {"kind": "loguniform", "low": 0.001, "high": 0.1}},
        "pbt": {"interval": 2, "mutate": ["lr"]},
    }
    base.update(overrides)
    return base


def record(tid, final, status="completed", lr=0.01):
    return {"trial_id": tid, "status": status, "final": final, "params": {"lr": lr, "epochs": 4}}


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pruning": {"method": "sha"}}, "pruning.method: 'sha' cannot be combined with pbt"),
        ({"epochs": 5}, "pbt.interval: epochs (5) must be a multiple of interval (2)"),
        ({"epochs": 2}, "makes one generation"),
        (
            {"pbt": {"interval": 2, "mutate": ["lr"], "quantile": 0.6}},
            "pbt.quantile: must be <= 0.5",
        ),
        (
            {"pbt": {"interval": 2, "mutate": ["lr"], "resample_probability": 2}},
            "pbt.resample_probability: must be <= 1",
        ),
        (
            {"pbt": {"interval": 2, "mutate": ["momentum"]}},
            "pbt.mutate: 'momentum' is not a parameter",
        ),
        ({"pbt": {"interval": 2}}, "pbt: missing required key 'mutate'"),
        ({"pbt": {"interval": 2, "mutate": ["lr"], "tempo": 1}}, "pbt: unknown key(s) ['tempo']"),
        ({"n_trials": 1}, "n_trials: PBT needs a population of at least 2 members"),
        (
            {
                "parameters": {
                    "lr": {"kind": "fixed", "value": 0.1},
                    "w": {"kind": "choice", "values": [1, 2]},
                }
            },
            "pbt.mutate: 'lr' is of kind 'fixed', which never changes",
        ),
        (
            {"pbt": {"interval": 2, "mutate": ["lr"], "schedule": [{"lr": 0.1}, {"lr": 0.2}]}},
            "pbt.schedule: must list the mutated values of generations 1..1",
        ),
    ],
)
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_config(config(**overrides), SCHEMA)
    assert message in str(error.value)


def test_members_are_named_by_their_population_and_settings():
    ids = set(build_sweep(config()).trials)
    assert len(ids) == 4
    assert ids.isdisjoint(build_sweep(config(pbt={"interval": 1, "mutate": ["lr"]})).trials)
    assert ids.isdisjoint(build_sweep(config(n_trials=5)).trials)
    assert ids == set(build_sweep(config()).trials)
    assert all(p["epochs"] == 4 for p in build_sweep(config()).trials.values())


# -- explore -----------------------------------------------------------------------------------
def test_perturbation_multiplies_moves_to_neighbours_and_stays_in_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        value, how = perturb(LR, 0.01, rng, 0.0)
        assert how in ("x0.8", "x1.2") and value in (0.008, 0.012)
        assert LR.low <= perturb(LR, 0.1, rng, 0.0)[0] <= LR.high
        assert perturb(WIDTH, 9, rng, 0.0)[0] in (8, 10)
        assert perturb(WIDTH, 10, rng, 0.0)[0] == 9  # the only neighbour inside the range
        assert perturb(OPT, "adam", rng, 0.0)[0] in ("sgd", "adamw")
        assert perturb(OPT, "sgd", rng, 0.0)[0] == "adam"
        resampled, how = perturb(LR, 0.01, rng, 1.0)
        assert how == "resampled" and LR.low <= resampled <= LR.high


def test_explore_changes_only_the_mutated_parameters():
    new, changes = explore(
        {"lr": 0.01, "width": 9}, [LR, WIDTH], ["lr"], np.random.default_rng(1), 0
    )
    assert new["width"] == 9 and new["lr"] != 0.01 and changes[0].startswith("lr 0.01 -> ")


# -- exploit -----------------------------------------------------------------------------------
def test_ranking_puts_failed_and_diverged_members_last():
    records = [
        record("b", 0.5),
        record("a", 0.5),
        record("c", None, "failed"),
        record("d", float("nan"), "diverged"),
        record("e", 0.9),
    ]
    assert [r["trial_id"] for r in rank_members(records, "max")] == ["e", "a", "b", "c", "d"]
    assert [r["trial_id"] for r in rank_members(records, "min")] == ["a", "b", "e", "c", "d"]


def test_the_bottom_quantile_and_every_failed_member_continue_from_a_top_member():
    records = [
        record(t, v)
        for t, v in zip("abcdefgh", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], strict=True)
    ]
    records[2] = record("c", None, "failed")
    decision = generation_decision(records, 1, PLAN, [LR], "acc", "max")
    parents = {m["member"]: m["parent"] for m in decision["members"]}
    # k = floor(0.25 * 8) = 2: the last two of the ranking (a, then c which failed) copy h or g.
    assert {t for t, p in parents.items() if p != t} == {"a", "c"}
    assert {parents["a"], parents["c"]} <= {"h", "g"}
    assert decision == generation_decision(list(reversed(records)), 1, PLAN, [LR], "acc", "max")
    other = generation_decision(records, 2, PLAN, [LR], "acc", "max")
    assert other["members"] != decision["members"]  # a new generation draws anew


def test_every_failed_member_is_replaced_even_beyond_the_quantile():
    records = [
        record("a", 0.3),
        record("b", 0.2),
        record("c", None, "failed"),
        record("d", None, "failed"),
    ]
    decision = generation_decision(records, 0, PLAN, [LR], "acc", "max")
    # k = 1: the one parent is the best member, a; both failed members copy it.
    assert {m["member"]: m["parent"] for m in decision["members"]} == {
        "a": "a",
        "b": "b",
        "c": "a",
        "d": "a",
    }


def test_nobody_is_cloned_when_no_member_finished():
    records = [record(t, None, "failed") for t in "abcd"]
    decision = generation_decision(records, 0, PLAN, [LR], "acc", "max")
    assert all(m["parent"] == m["member"] for m in decision["members"])


def test_ancestry_follows_clones_back_to_the_first_generation():
    lineages = {
        "a": [
            {"generation": 0, "parent": "a", "params": {"lr": 1}},
            {"generation": 1, "parent": "b", "params": {"lr": 2}},
            {"generation": 2, "parent": "a", "params": {"lr": 3}},
        ],
        "b": [
            {"generation": 0, "parent": "b", "params": {"lr": 9}},
            {"generation": 1, "parent": "b", "params": {"lr": 9}},
        ],
    }
    chain = ancestry(lineages, "a", 3)
    assert chain == [("b", {"lr": 9}), ("a", {"lr": 2}), ("a", {"lr": 3})]
    assert replay_schedule(chain, ["lr"]) == ({"lr": 9}, [{"lr": 2}, {"lr": 3}])


# -- the checkpoint copy and apply_hparams -------------------------------------------------------
def train(trial_dir: Path, lr: float, epochs: int, apply: bool = True) -> TrialSession:
    """A few epochs of a tiny model in this process, as a script's segment would run them."""
    torch.manual_seed(0)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    session = TrialSession(trial_dir, stop_at_epoch=epochs, handle_signals=False, verbose=False)
    session.register(model=model, optimizer=optimizer, scheduler=scheduler)
    session.resume()
    if apply:
        session.apply_hparams(optimizer, scheduler, lr=lr)
    session.model, session.optimizer = model, optimizer  # for the test's eyes
    for _ in session.epochs(4):
        for idx in session.batches(64, 16):
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        session.end_epoch({"loss": loss.item()})
    return session


def weights(session: TrialSession) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in session.model.parameters()])


def test_a_clone_trains_with_the_perturbed_lr_over_its_parents_state(tmp_path):
    parent, clone, same = tmp_path / "parent", tmp_path / "clone", tmp_path / "same"
    train(parent, 0.01, 2)
    for folder in (clone, same):
        train(folder, 0.05, 1)  # its own history, and a checkpoint a clone must not resume
    for folder in (clone, same):
        clone_checkpoint(parent, folder, epoch=2, keep=2)
    assert len(list_checkpoints(clone / "checkpoints")) == 1
    assert [r["epoch"] for r in read_metrics(clone)] == [1]

    continued = train(parent, 0.01, 3)  # the parent goes on with its own rate
    repeated = train(same, 0.01, 3)  # a copy with the old rate repeats it bit for bit
    assert torch.equal(weights(repeated), weights(continued))
    perturbed = train(clone, 0.012, 3)
    # The schedule goes on from the new base: 0.012 halved three times, not the parent's 0.01.
    assert perturbed.optimizer.param_groups[0]["lr"] == pytest.approx(0.012 * 0.5**3, rel=1e-12)
    assert continued.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3, rel=1e-12)
    assert not torch.equal(weights(perturbed), weights(continued))
    # Its own folder keeps its own epochs: 1 (its own), then 3 (from its parent's model).
    assert [r["epoch"] for r in read_metrics(clone)] == [1, 3]


def test_without_apply_hparams_the_restored_rate_wins(tmp_path):
    train(tmp_path / "p", 0.01, 2)
    session = train(tmp_path / "p", 0.02, 3, apply=False)
    assert session.optimizer.param_groups[0]["lr"] == 0.01 * 0.5**3


def test_apply_hparams_names_an_unknown_key():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    session = TrialSession(None, handle_signals=False, verbose=False)
    with pytest.raises(KeyError, match="no 'betas'"):
        session.apply_hparams(optimizer, betas=0.9)
    session.apply_hparams(optimizer, lr=0.3, weight_decay=0.1)
    assert optimizer.param_groups[0]["lr"] == 0.3
    assert optimizer.param_groups[0]["weight_decay"] == 0.1


def test_clone_refuses_a_parent_checkpoint_from_the_middle_of_an_epoch(tmp_path):
    state = {"epoch": 2, "position": 3, "global_step": 11, "history": []}
    save_checkpoint(tmp_path / "p" / "checkpoints", 11, state)
    write_metrics(tmp_path / "m", [])
    with pytest.raises(RuntimeError, match="not at the end of epoch 2"):
        clone_checkpoint(tmp_path / "p", tmp_path / "m", epoch=2, keep=2)
    assert load_latest(tmp_path / "m" / "checkpoints") is None


def test_the_pbt_defaults_are_the_schemas():
    import yaml

    from snakesweep.search import pbt

    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["pbt"]["properties"]
    assert schema["quantile"]["default"] == pbt.DEFAULT_QUANTILE
    assert schema["resample_probability"]["default"] == pbt.DEFAULT_RESAMPLE_PROBABILITY


def test_the_population_figure_marks_each_clone_event(tmp_path):
    import pandas as pd

    from snakesweep.report.plots import plot_population
    from snakesweep.report.tables import SweepTables

    metrics = pd.DataFrame(
        [
            {"trial_id": t, "epoch": e, "acc": v}
            for t, e, v in [("a", 1, 0.5), ("a", 2, 0.6), ("b", 1, 0.2), ("b", 2, 0.55)]
        ]
    )
    lineage = pd.DataFrame(
        [
            {"trial_id": "a", "generation": 0, "parent": "a", "cloned": False, "params_lr": 0.1},
            {"trial_id": "a", "generation": 1, "parent": "a", "cloned": False, "params_lr": 0.1},
            {"trial_id": "b", "generation": 0, "parent": "b", "cloned": False, "params_lr": 0.5},
            {"trial_id": "b", "generation": 1, "parent": "a", "cloned": True, "params_lr": 0.08},
        ]
    )
    tables = SweepTables("r", "acc", "max", pd.DataFrame(), metrics, lineage=lineage)
    drawn = plot_population(tables, tmp_path / "p.svg", "acc", "max", ["lr"], interval=1)
    assert drawn == {"members": ["a", "b"], "clones": [("b", 1, "a")]}
    assert "lr per generation" in (tmp_path / "p.svg").read_text()


def test_the_generation_rule_run_again_after_a_kill_leaves_the_same_state(tmp_path):
    """A controller killed inside the rule (copies made, decision not written) reruns it."""
    from snakesweep.job.pbt_generation import run_generation
    from snakesweep.store.trial_folder import read_lineage

    sweep = build_sweep(config(n_trials=2, results_dir=str(tmp_path / "results")))
    (good, bad) = sweep.trials
    records = []
    for tid, final in ((good, 0.9), (bad, 0.1)):
        train(sweep.trial_dir(tid), sweep.trials[tid]["lr"], 2)
        records.append(
            {"trial_id": tid, "status": "completed", "final": final, "params": sweep.trials[tid]}
        )
    path = tmp_path / "gen-0.json"
    first = run_generation(sweep, records, 0, path, keep=2)
    text = path.read_text()
    copied = final_state_of(sweep.trial_dir(bad))
    path.unlink()  # the rule's output is deleted as Snakemake does with an incomplete one
    again = run_generation(sweep, records, 0, path, keep=2)
    assert again == first and path.read_text() == text
    assert [m["parent"] for m in first["members"] if m["member"] == bad] == [good]
    for name, tensor in final_state_of(sweep.trial_dir(bad)).items():
        assert torch.equal(tensor, copied[name])
        assert torch.equal(tensor, final_state_of(sweep.trial_dir(good))[name])
    assert [e["parent"] for e in read_lineage(sweep.trial_dir(bad))] == [bad, good]
    assert [e["parent"] for e in read_lineage(sweep.trial_dir(good))] == [good, good]


def final_state_of(trial_dir: Path) -> dict:
    state, _ = load_latest(trial_dir / "checkpoints")
    return state["objects"]["model"]


def test_a_dry_run_says_how_the_generations_are_planned():
    from snakesweep.search.sweep import plan_note

    note = plan_note(build_sweep(config()), config())
    assert "pbt trains 4 members in 2 generations of 2 epoch(s)" in note
