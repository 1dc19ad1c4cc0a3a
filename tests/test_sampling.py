from snakesweep.search.sampling import expand, grid_points, sample
from snakesweep.search.space import parse_parameters

SPACE = {
    "lr": {"kind": "loguniform", "low": 1e-4, "high": 1e-1},
    "dropout": {"kind": "uniform", "low": 0.0, "high": 0.5},
    "width": {"kind": "int", "low": 8, "high": 512, "log": True},
    "depth": {"kind": "int", "low": 1, "high": 3},
    "act": {"kind": "choice", "values": ["relu", "gelu", None]},
    "opt": {"kind": "fixed", "value": "adam"},
}


def test_same_seed_gives_same_trials():
    params = parse_parameters(SPACE, "random")
    assert expand(params, "random", 5, seed=7) == expand(params, "random", 5, seed=7)


def test_different_seeds_differ():
    params = parse_parameters(SPACE, "random")
    assert expand(params, "random", 5, seed=1) != expand(params, "random", 5, seed=2)


def test_growing_n_trials_keeps_earlier_trials():
    params = parse_parameters(SPACE, "random")
    assert expand(params, "random", 16, seed=3)[:8] == expand(params, "random", 8, seed=3)


def test_samples_respect_bounds_and_types():
    params = parse_parameters(SPACE, "random")
    for trial in expand(params, "random", 300, seed=0):
        assert 1e-4 <= trial["lr"] <= 1e-1
        assert 0.0 <= trial["dropout"] <= 0.5
        assert isinstance(trial["width"], int) and 8 <= trial["width"] <= 512
        assert trial["depth"] in (1, 2, 3)
        assert trial["act"] in ("relu", "gelu", None)
        assert trial["opt"] == "adam"


def test_all_int_and_choice_values_are_reached():
    params = parse_parameters(SPACE, "random")
    trials = expand(params, "random", 300, seed=0)
    assert {t["depth"] for t in trials} == {1, 2, 3}
    assert {t["act"] for t in trials} == {"relu", "gelu", None}
    widths = [t["width"] for t in trials]
    assert min(widths) < 16 and max(widths) > 256  # log scale reaches both ends


def test_sample_depends_only_on_seed_and_index():
    params = parse_parameters(SPACE, "random")
    sampled = [p for p in params if p.kind != "fixed"]
    expected = {k: v for k, v in expand(params, "random", 4, seed=5)[3].items() if k != "opt"}
    assert sample(sampled, 5, 3) == expected


def test_pinned_sample_values():
    # Pins the sampler: changing it would silently change every sweep's trials and ids.
    params = parse_parameters({"lr": {"kind": "loguniform", "low": 1e-3, "high": 1.0}}, "random")
    assert expand(params, "random", 3, seed=0) == [
        {"lr": 0.0814489},
        {"lr": 0.466892},
        {"lr": 0.00174772},
    ]


def test_grid_is_cartesian_product_in_listed_order():
    space = {
        "a": {"kind": "choice", "values": [1, 2]},
        "b": {"kind": "choice", "values": ["x", "y", "z"]},
        "c": {"kind": "fixed", "value": 0.5},
    }
    trials = expand(parse_parameters(space, "grid"), "grid", n_trials=99, seed=0)
    assert trials == [{"c": 0.5, "a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]


def test_grid_axes_combined_with_random_samples():
    space = {
        "opt": {"kind": "grid", "values": ["adam", "sgd"]},
        "lr": {"kind": "loguniform", "low": 1e-3, "high": 1.0},
    }
    params = parse_parameters(space, "random")
    trials = expand(params, "random", 3, seed=0)
    assert len(trials) == 6
    assert [t["opt"] for t in trials] == ["adam", "sgd"] * 3
    # Both grid points share each random sample.
    assert [t["lr"] for t in trials[::2]] == [t["lr"] for t in trials[1::2]]
    assert len(grid_points(params)) == 2
