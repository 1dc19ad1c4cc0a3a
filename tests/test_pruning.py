"""Exact outputs of the promotion rules in :mod:`snakesweep.search.pruning`."""

from __future__ import annotations

import numpy as np
import pytest

from snakesweep.search.pruning import (
    Bracket,
    asha_decision,
    hyperband_brackets,
    is_valid_score,
    n_promoted,
    promote,
    rank_trials,
    rung_budgets,
)

NAN = float("nan")
INF = float("inf")


# --- rung_budgets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_t", "max_t", "eta", "expected"),
    [
        (1, 27, 3, [1, 3, 9, 27]),
        (1, 81, 3, [1, 3, 9, 27, 81]),
        (3, 81, 3, [3, 9, 27, 81]),
        (1, 243, 3, [1, 3, 9, 27, 81, 243]),  # float log says 4.999...
        (1, 1000, 10, [1, 10, 100, 1000]),  # float log says 2.999...
        (1, 16, 2, [1, 2, 4, 8, 16]),
        (1, 9, 3, [1, 3, 9]),
        # Not a power of eta: the geometric budget that would reach max_t becomes max_t.
        (1, 10, 3, [1, 3, 9, 10]),
        (1, 26, 3, [1, 3, 9, 26]),
        (2, 10, 3, [2, 6, 10]),
        (1, 100, 4, [1, 4, 16, 64, 100]),
        (1, 2, 3, [1, 2]),
        # A single rung.
        (1, 1, 3, [1]),
        (5, 5, 2, [5]),
    ],
)
def test_rung_budgets(min_t: int, max_t: int, eta: int, expected: list[int]) -> None:
    assert rung_budgets(min_t, max_t, eta) == expected


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((1, 27, 1), ValueError, r"^eta must be >= 2, got 1$"),
        ((1, 27, 0), ValueError, r"^eta must be >= 2, got 0$"),
        ((1, 27, -3), ValueError, r"^eta must be >= 2, got -3$"),
        ((0, 27, 3), ValueError, r"^min_t must be > 0, got 0$"),
        ((-1, 27, 3), ValueError, r"^min_t must be > 0, got -1$"),
        ((28, 27, 3), ValueError, r"^min_t must be <= max_t, got min_t=28 > max_t=27$"),
        ((1, 27, 2.5), TypeError, r"^eta must be an integer"),
        ((1, 27, True), TypeError, r"^eta must be an integer"),
        ((1.0, 27, 3), TypeError, r"^min_t must be an integer"),
        ((1, 27.0, 3), TypeError, r"^max_t must be an integer"),
    ],
)
def test_rung_budgets_rejects_bad_arguments(
    args: tuple[object, object, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        rung_budgets(*args)  # type: ignore[arg-type]


def test_rung_budgets_accepts_numpy_integers() -> None:
    assert rung_budgets(np.int64(1), np.int64(9), np.int64(3)) == [1, 3, 9]  # type: ignore[arg-type]


# --- n_promoted ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "eta", "expected"),
    [
        (0, 3, 0),
        (1, 3, 1),
        (2, 3, 1),
        (3, 3, 1),
        (4, 3, 2),
        (9, 3, 3),
        (10, 3, 4),
        (27, 3, 9),
        (1, 2, 1),
        (2, 2, 1),
        (5, 2, 3),
        (100, 4, 25),
        (101, 4, 26),
        (1, 100, 1),
    ],
)
def test_n_promoted(n: int, eta: int, expected: int) -> None:
    assert n_promoted(n, eta) == expected


@pytest.mark.parametrize(
    ("n", "eta", "match"),
    [(-1, 3, r"^n must be >= 0, got -1$"), (9, 1, r"^eta must be >= 2, got 1$")],
)
def test_n_promoted_rejects_bad_arguments(n: int, eta: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        n_promoted(n, eta)


# --- is_valid_score -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, True),
        (-1.5, True),
        (3, True),
        (1e308, True),
        (np.float32(0.25), True),
        (np.int64(7), True),
        (None, False),
        (NAN, False),
        (INF, False),
        (-INF, False),
        (np.float64("nan"), False),
        (np.float32("inf"), False),
        (True, False),
        ("1.0", False),
    ],
)
def test_is_valid_score(value: object, expected: bool) -> None:
    assert is_valid_score(value) is expected


# --- rank_trials --------------------------------------------------------------

MIXED = {"b": 0.5, "a": 0.5, "c": 0.1, "d": None, "e": NAN, "f": INF, "g": -INF, "h": 0.9}


@pytest.mark.parametrize(
    ("scores", "mode", "expected"),
    [
        (MIXED, "min", ["c", "a", "b", "h"]),
        (MIXED, "max", ["h", "a", "b", "c"]),
        ({"z": 2.0, "y": 1.0, "x": 3.0}, "min", ["y", "z", "x"]),
        ({"z": 2.0, "y": 1.0, "x": 3.0}, "max", ["x", "z", "y"]),
        # Ties by id ascending, in both modes (not reversed for 'max').
        ({"t3": 1.0, "t1": 1.0, "t2": 1.0}, "min", ["t1", "t2", "t3"]),
        ({"t3": 1.0, "t1": 1.0, "t2": 1.0}, "max", ["t1", "t2", "t3"]),
        ({"n": -2.0, "m": -1.0}, "max", ["m", "n"]),
        ({"a": None, "b": NAN}, "min", []),
        ({}, "max", []),
    ],
)
def test_rank_trials(scores: dict[str, float | None], mode: str, expected: list[str]) -> None:
    assert rank_trials(scores, mode) == expected


@pytest.mark.parametrize("mode", ["minimize", "MIN", "", None])
def test_rank_trials_rejects_bad_mode(mode: object) -> None:
    with pytest.raises(ValueError, match=r"^mode must be 'min' or 'max'"):
        rank_trials({}, mode)  # type: ignore[arg-type]


# --- promote ------------------------------------------------------------------

NINE = {
    "t1": 0.9,
    "t2": 0.1,
    "t3": 0.5,
    "t4": 0.3,
    "t5": 0.7,
    "t6": 0.2,
    "t7": 0.8,
    "t8": 0.4,
    "t9": 0.6,
}
WITH_INVALID = {"a": NAN, "b": INF, "c": -INF, "d": None, "e": 5.0, "f": 6.0}


@pytest.mark.parametrize(
    ("scores", "eta", "mode", "expected"),
    [
        (NINE, 3, "min", ["t2", "t6", "t4"]),
        (NINE, 3, "max", ["t1", "t7", "t5"]),
        (NINE, 2, "min", ["t2", "t6", "t4", "t8", "t3"]),
        (NINE, 9, "max", ["t1"]),
        # Ties at the cut: decided by id, whatever the insertion order.
        ({"b": 1.0, "a": 1.0, "c": 1.0, "d": 2.0}, 2, "min", ["a", "b"]),
        ({"c": 1.0, "d": 2.0, "a": 1.0, "b": 1.0}, 2, "min", ["a", "b"]),
        ({"b": 1.0, "a": 1.0, "c": 1.0, "d": 2.0}, 2, "max", ["d", "a"]),
        # Invalid trials are never promoted, even if that leaves the quota (3) unfilled;
        # -inf would otherwise win 'min' and +inf would win 'max'.
        (WITH_INVALID, 2, "min", ["e", "f"]),
        (WITH_INVALID, 2, "max", ["f", "e"]),
        ({"a": None, "b": NAN, "c": -INF}, 2, "min", []),
        # The quota counts the whole cohort: ceil(4 / 3) = 2, not ceil(3 / 3) = 1.
        ({"a": 1.0, "b": 2.0, "c": 3.0, "x": NAN}, 3, "min", ["a", "b"]),
        ({"a": 1.0}, 3, "max", ["a"]),
        ({}, 3, "min", []),
    ],
)
def test_promote(scores: dict[str, float | None], eta: int, mode: str, expected: list[str]) -> None:
    assert promote(scores, eta, mode) == expected


@pytest.mark.parametrize(
    ("eta", "mode", "match"),
    [
        (1, "min", r"^eta must be >= 2, got 1$"),
        (3, "MAX", r"^mode must be 'min' or 'max', got 'MAX'$"),
    ],
)
def test_promote_rejects_bad_arguments(eta: int, mode: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        promote({"a": 1.0}, eta, mode)


# --- hyperband_brackets -------------------------------------------------------


@pytest.mark.parametrize(
    ("min_t", "max_t", "eta", "expected"),
    [
        # The classic table of Li et al. with R = 27, eta = 3.
        (
            1,
            27,
            3,
            [
                Bracket(s=3, n_trials=27, budgets=(1, 3, 9, 27)),
                Bracket(s=2, n_trials=12, budgets=(3, 9, 27)),
                Bracket(s=1, n_trials=6, budgets=(9, 27)),
                Bracket(s=0, n_trials=4, budgets=(27,)),
            ],
        ),
        # The paper's R = 81, eta = 3 table (n = 81, 34, 15, 8, 5).
        (
            1,
            81,
            3,
            [
                Bracket(s=4, n_trials=81, budgets=(1, 3, 9, 27, 81)),
                Bracket(s=3, n_trials=34, budgets=(3, 9, 27, 81)),
                Bracket(s=2, n_trials=15, budgets=(9, 27, 81)),
                Bracket(s=1, n_trials=8, budgets=(27, 81)),
                Bracket(s=0, n_trials=5, budgets=(81,)),
            ],
        ),
        # log_3(243) is 4.999... in floats; s_max must still be 5.
        (
            1,
            243,
            3,
            [
                Bracket(s=5, n_trials=243, budgets=(1, 3, 9, 27, 81, 243)),
                Bracket(s=4, n_trials=98, budgets=(3, 9, 27, 81, 243)),
                Bracket(s=3, n_trials=41, budgets=(9, 27, 81, 243)),
                Bracket(s=2, n_trials=18, budgets=(27, 81, 243)),
                Bracket(s=1, n_trials=9, budgets=(81, 243)),
                Bracket(s=0, n_trials=6, budgets=(243,)),
            ],
        ),
        # log_10(1000) is 2.999... in floats; s_max must still be 3.
        (
            1,
            1000,
            10,
            [
                Bracket(s=3, n_trials=1000, budgets=(1, 10, 100, 1000)),
                Bracket(s=2, n_trials=134, budgets=(10, 100, 1000)),
                Bracket(s=1, n_trials=20, budgets=(100, 1000)),
                Bracket(s=0, n_trials=4, budgets=(1000,)),
            ],
        ),
        # Not a power of eta: rungs are max_t * eta**(i - s), rounded half up.
        (
            1,
            10,
            3,
            [
                Bracket(s=2, n_trials=9, budgets=(1, 3, 10)),
                Bracket(s=1, n_trials=5, budgets=(3, 10)),
                Bracket(s=0, n_trials=3, budgets=(10,)),
            ],
        ),
        # 5 / 2 = 2.5 rounds up to 3 (Python's round() would give 2).
        (
            1,
            5,
            2,
            [
                Bracket(s=2, n_trials=4, budgets=(1, 3, 5)),
                Bracket(s=1, n_trials=3, budgets=(3, 5)),
                Bracket(s=0, n_trials=3, budgets=(5,)),
            ],
        ),
        (
            2,
            20,
            3,
            [
                Bracket(s=2, n_trials=9, budgets=(2, 7, 20)),
                Bracket(s=1, n_trials=5, budgets=(7, 20)),
                Bracket(s=0, n_trials=3, budgets=(20,)),
            ],
        ),
        (5, 5, 2, [Bracket(s=0, n_trials=1, budgets=(5,))]),
        (3, 8, 3, [Bracket(s=0, n_trials=1, budgets=(8,))]),
    ],
)
def test_hyperband_brackets(min_t: int, max_t: int, eta: int, expected: list[Bracket]) -> None:
    assert hyperband_brackets(min_t, max_t, eta) == expected


@pytest.mark.parametrize(("min_t", "max_t", "eta"), [(1, 27, 3), (1, 81, 3), (2, 32, 2)])
def test_hyperband_rungs_match_successive_halving_for_geometric_budgets(
    min_t: int, max_t: int, eta: int
) -> None:
    brackets = hyperband_brackets(min_t, max_t, eta)
    assert brackets[0].budgets == tuple(rung_budgets(min_t, max_t, eta))
    for bracket in brackets:
        assert bracket.budgets == tuple(rung_budgets(bracket.budgets[0], max_t, eta))


def test_bracket_is_frozen() -> None:
    bracket = hyperband_brackets(1, 27, 3)[0]
    with pytest.raises(AttributeError):
        bracket.n_trials = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, 27, 1), r"^eta must be >= 2, got 1$"),
        ((0, 27, 3), r"^min_t must be > 0, got 0$"),
        ((30, 27, 3), r"^min_t must be <= max_t, got min_t=30 > max_t=27$"),
    ],
)
def test_hyperband_brackets_rejects_bad_arguments(args: tuple[int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hyperband_brackets(*args)


# --- asha_decision ------------------------------------------------------------

ONE_TO_NINE = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


def _peers_without(value: float) -> list[float]:
    peers = list(ONE_TO_NINE)
    peers.remove(value)
    return peers


@pytest.mark.parametrize(
    ("own", "peers", "eta", "mode", "min_peers", "expected"),
    [
        # An invalid own score always stops, even before there is enough evidence.
        (None, [1.0, 2.0, 3.0], 3, "min", 1, False),
        (NAN, [1.0, 2.0, 3.0], 3, "min", 1, False),
        (INF, [], 3, "max", 1, False),
        (-INF, [1.0], 2, "min", 1, False),
        (None, [], 3, "min", 5, False),
        # Fewer than min_peers valid scores (own included): continue, however bad.
        (10.0, [1.0], 2, "min", 3, True),
        (-10.0, [1.0, 2.0], 2, "max", 4, True),
        # Invalid peers do not count as evidence: 2 valid < 3.
        (10.0, [1.0, None, NAN, INF, -INF], 2, "min", 3, True),
        # ... nor toward the quota: 3 valid, eta 2 -> the best 2 (cut-off 2.0) go on.
        (3.0, [NAN, NAN, 1.0, 2.0], 2, "min", 1, False),
        (2.0, [NAN, NAN, 1.0, 3.0], 2, "min", 1, True),
        # Exactly min_peers valid scores: decide. min_peers=2 is slurm-sweeps' pairwise rule.
        (2.0, [1.0], 2, "min", 2, False),
        (1.0, [2.0], 2, "min", 2, True),
        (1.0, [2.0], 2, "max", 2, False),
        (5.0, [], 3, "min", 1, True),
        # Nine valid scores, eta 3: the best 3 continue.
        (1.0, _peers_without(1.0), 3, "min", 3, True),
        (3.0, _peers_without(3.0), 3, "min", 3, True),
        (4.0, _peers_without(4.0), 3, "min", 3, False),
        (9.0, _peers_without(9.0), 3, "min", 3, False),
        (7.0, _peers_without(7.0), 3, "max", 3, True),
        (6.0, _peers_without(6.0), 3, "max", 3, False),
        (1.0, _peers_without(1.0), 3, "max", 3, False),
        # Ties with the cut-off value continue (3 of 4 go on here, quota 2) ...
        (2.0, [1.0, 2.0, 3.0], 2, "min", 1, True),
        (5.0, [5.0, 1.0, 0.0], 4, "max", 1, True),
        # ... but a value just past a tied cut-off does not.
        (2.0, [1.0, 1.0, 3.0], 2, "min", 1, False),
        (0.0, [5.0, 5.0, 1.0], 4, "max", 1, False),
        # Negative scores in 'max' mode.
        (-1.0, [-2.0, -3.0], 3, "max", 1, True),
        (-3.0, [-1.0, -2.0], 3, "max", 1, False),
        # A diverged peer (-inf) is not a better 'min' score.
        (1.0, [-INF, 2.0], 2, "min", 1, True),
        (1.0, [INF, 0.5], 2, "max", 1, True),
    ],
)
def test_asha_decision(
    own: float | None,
    peers: list[float | None],
    eta: int,
    mode: str,
    min_peers: int,
    expected: bool,
) -> None:
    assert asha_decision(own, peers, eta, mode, min_peers) is expected


@pytest.mark.parametrize(
    ("eta", "mode", "min_peers", "error", "match"),
    [
        (1, "min", 1, ValueError, r"^eta must be >= 2, got 1$"),
        (3, "best", 1, ValueError, r"^mode must be 'min' or 'max', got 'best'$"),
        (3, "min", 0, ValueError, r"^min_peers must be >= 1, got 0$"),
        (3, "min", 1.5, TypeError, r"^min_peers must be an integer"),
    ],
)
def test_asha_decision_rejects_bad_arguments(
    eta: int, mode: str, min_peers: int, error: type[Exception], match: str
) -> None:
    # Checked before the score, so a bad configuration fails even for a diverged trial.
    for own in (1.0, None):
        with pytest.raises(error, match=match):
            asha_decision(own, [2.0, 3.0], eta, mode, min_peers)


def test_rung_decision_scores_only_completed_trials_and_splits_the_cohort():
    from snakesweep.search.pruning import rung_decision

    records = [
        {"trial_id": "a", "status": "completed", "final": 0.9},
        {"trial_id": "b", "status": "completed", "final": 0.5},
        {"trial_id": "c", "status": "diverged", "final": None},
        {"trial_id": "d", "status": "failed", "final": 0.99},
        {"trial_id": "e", "status": "completed", "final": 0.7},
        {"trial_id": "f", "status": "completed", "final": 0.1},
    ]
    decision = rung_decision(records, bracket=0, rung=1, budget=3, metric="acc", mode="max", eta=3)
    assert decision["scores"] == {"a": 0.9, "b": 0.5, "c": None, "d": None, "e": 0.7, "f": 0.1}
    assert decision["promoted"] == ["a", "e"]
    assert decision["pruned"] == ["b", "c", "d", "f"]
    assert (decision["bracket"], decision["rung"], decision["budget"]) == (0, 1, 3)
