"""Figures of a sweep for the report: learning curves, the metric against each parameter, and
the hyper-parameters' importance (computed by :mod:`snakesweep.report.importance`).

Both take the sweep's pandas tables (``snakesweep.load``, :mod:`snakesweep.report.tables`):
each finished trial as the leaderboard sees it (a trial stopped at a pruning rung
is drawn to its rung) and its per-epoch metrics. Figures are drawn with matplotlib's Agg
backend and saved without a date, so the same records give the same file.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakesweep.report.results import best_trial, is_finite
from snakesweep.report.tables import SweepTables, rows, trial_records
from snakesweep.store.atomic import write_bytes
from snakesweep.store.number_format import format_number

if TYPE_CHECKING:  # importing it imports Optuna, which the other figures do not need
    from snakesweep.report.importance import Importance

#: Line and marker style of each trial status.
STYLES: dict[str, dict[str, Any]] = {
    "completed": {"color": "tab:blue", "linestyle": "-", "end": None},
    "pruned": {"color": "tab:orange", "linestyle": "-", "end": "x"},
    "diverged": {"color": "tab:red", "linestyle": "-", "end": "v"},
    "failed": {"color": "tab:gray", "linestyle": "--", "end": "s"},
}
OTHER_STYLE: dict[str, Any] = {"color": "tab:purple", "linestyle": ":", "end": None}
BEST_COLOR = "tab:green"


def drawn_trials(tables: SweepTables, full_budget: int | None = None) -> list[dict[str, Any]]:
    """The finished trials as result-record-shaped dicts (``tables.trial_records``), by id."""
    return sorted(trial_records(tables, full_budget), key=lambda r: r["trial_id"])


def curve(record: Mapping[str, Any], metric: str) -> tuple[list[int], list[float]]:
    """Epochs and metric values of a record's history; a missing or non-finite value is NaN."""
    epochs, values = [], []
    for row in record.get("history") or []:
        if "epoch" not in row:
            continue
        value = row.get(metric)
        epochs.append(int(row["epoch"]))
        values.append(float(value) if is_finite(value) else math.nan)
    return epochs, values


def varying_parameters(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """The parameters among ``names`` that more than one trial value exists for (epochs aside).

    Only the trials that have a parameter count: one that exists in some trials only
    (``when``) varies if those trials hold more than one value of it.
    """
    out = []
    for name in names:
        if name == "epochs":
            continue
        seen = {repr(r["params"][name]) for r in having(records, name)}
        if len(seen) > 1:
            out.append(name)
    return out


def having(records: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    """The records whose trial has parameter ``name`` (a conditional one may be absent)."""
    return [r for r in records if name in (r.get("params") or {})]


def is_numeric(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_learning_curves(
    tables: SweepTables,
    path: str | os.PathLike,
    metric: str,
    mode: str,
    title: str = "",
    budget: int | None = None,
) -> dict[str, Any]:
    """One line per trial (metric against epoch), the best trial highlighted.

    Pruned trials end at their rung with an ``x``, diverged ones with a ``v``,
    failed ones are dashed. Returns what was drawn (for logs and tests): the
    number of lines per status, the best trial, and each trial's status and last epoch.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    records = drawn_trials(tables, budget)
    best = best_trial(records, mode, budget=budget)
    fig, ax = _figure(1, 1, (7.5, 4.8))
    ax = ax[0]
    drawn: dict[str, int] = {}
    ends: dict[str, tuple[str, int]] = {}
    for record in records:
        epochs, values = curve(record, metric)
        if epochs:
            ends[record["trial_id"]] = (record.get("status", "?"), epochs[-1])
        if not epochs or (best is not None and record["trial_id"] == best["trial_id"]):
            continue
        style = STYLES.get(record.get("status"), OTHER_STYLE)
        ax.plot(
            epochs,
            values,
            color=style["color"],
            linestyle=style["linestyle"],
            linewidth=1.0,
            alpha=0.6,
            marker="." if len(epochs) == 1 else None,
        )
        if style["end"]:
            last = _last_finite(epochs, values)
            if last is not None:
                ax.plot(*last, marker=style["end"], color=style["color"], markersize=6)
        drawn[record.get("status", "?")] = drawn.get(record.get("status", "?"), 0) + 1
    handles = []
    for status, count in drawn.items():
        style = STYLES.get(status, OTHER_STYLE)
        label = f"{status} ({count})" + (" - ends at its rung" if status == "pruned" else "")
        handles.append(
            Line2D(
                [],
                [],
                color=style["color"],
                linestyle=style["linestyle"],
                marker=style["end"],
                label=label,
            )
        )
    if best is not None:
        epochs, values = curve(best, metric)
        ax.plot(epochs, values, color=BEST_COLOR, linewidth=2.8, marker="o", markersize=4, zorder=5)
        handles.insert(
            0,
            Line2D(
                [],
                [],
                color=BEST_COLOR,
                linewidth=2.8,
                marker="o",
                label=f"best {best['trial_id']}: {metric}={format_number(best['final'])}",
            ),
        )
    if not any(curve(r, metric)[0] for r in records):
        ax.text(
            0.5, 0.5, "no metrics reported yet", ha="center", va="center", transform=ax.transAxes
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_title(title or f"{metric} per epoch, {len(records)} trials")
    ax.grid(True, alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="best")
    _save(fig, path)
    return {
        "trials": len(records),
        "drawn": {**drawn, **({"best": 1} if best is not None else {})},
        "best": best["trial_id"] if best is not None else None,
        "ends": ends,
    }


def plot_metric_vs_params(
    tables: SweepTables,
    path: str | os.PathLike,
    metric: str,
    mode: str,
    parameters: Sequence[str],
    log_parameters: Iterable[str] = (),
    title: str = "",
    budget: int | None = None,
) -> dict[str, Any]:
    """One scatter per varying parameter: each trial's last metric against its value.

    A panel shows only the trials that have its parameter: one whose ``when`` condition
    was false has no value to place, and its x label counts the trials left out.

    ``log_parameters`` get a log x-axis (loguniform, or int with ``log: true``);
    non-numeric values (strings, booleans) are placed on a categorical axis. Pruned
    trials are hollow (their metric is at their rung), the best trial is a star.
    Trials without a finite metric are left out and counted in the title.
    Returns the scale and the number of points of each panel.
    """
    records = drawn_trials(tables, budget)
    log_parameters = set(log_parameters)
    best = best_trial(records, mode, budget=budget)
    shown = [r for r in records if is_finite(r.get("final"))]
    names = varying_parameters(records, parameters)
    ncols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig, axes = _figure(nrows, ncols, (4.2 * ncols, 3.4 * nrows))
    scales: dict[str, str] = {}
    points: dict[str, int] = {}
    for ax, name in zip(axes, names, strict=False):
        panel = having(shown, name)
        values = [r["params"][name] for r in panel]
        points[name] = len(panel)
        if is_numeric(values):
            xs = [float(v) for v in values]
            # No finite metric means no points: a log axis over nothing has no range.
            scale = "log" if name in log_parameters and xs and all(x > 0 for x in xs) else "linear"
            _numeric_axis(ax, xs, scale)
        else:
            categories = sorted({repr(v) for v in values})
            positions = {c: i for i, c in enumerate(categories)}
            xs = [float(positions[repr(v)]) for v in values]
            ax.set_xticks(range(len(categories)), [_category_label(c) for c in categories])
            ax.set_xlim(-0.5, len(categories) - 0.5)
            scale = "category"
        scales[name] = scale
        for x, record in zip(xs, panel, strict=True):
            status = record.get("status")
            color = STYLES.get(status, OTHER_STYLE)["color"]
            if best is not None and record["trial_id"] == best["trial_id"]:
                ax.scatter([x], [record["final"]], marker="*", s=180, color=BEST_COLOR, zorder=5)
            elif status == "pruned":
                ax.scatter([x], [record["final"]], s=28, facecolors="none", edgecolors=color)
            else:
                ax.scatter([x], [record["final"]], s=28, color=color, alpha=0.8)
        absent = len(shown) - len(panel)
        ax.set_xlabel(
            name
            + (" (log)" if scale == "log" else "")
            + (f"\n{absent} trial(s) without {name} not shown" if absent else "")
        )
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    if not names:
        axes[0].text(
            0.5,
            0.5,
            "no parameter varies between the trials",
            ha="center",
            va="center",
            transform=axes[0].transAxes,
        )
    hidden = len(records) - len(shown)
    heading = title or f"{metric} against each parameter"
    notes = ["green star = best"] if best is not None else []
    if any(r.get("status") == "pruned" for r in shown):
        notes.append("hollow = pruned (metric at its rung)")
    if hidden:
        notes.append(f"{hidden} trial(s) without a finite {metric} not shown")
    if best is None:
        notes.append(f"nothing is best: no trial completed with a finite {metric}")
    fig.suptitle("\n".join([heading, "; ".join(notes)]).strip(), fontsize="medium")
    _save(fig, path)
    return {"panels": scales, "shown": len(shown), "hidden": hidden, "points": points}


def plot_importance(
    importance: Importance, path: str | os.PathLike, title: str = ""
) -> dict[str, Any]:
    """One bar per parameter: its fANOVA importance, the largest on top.

    Without an importance (too few completed trials, nothing varies) the figure says why in
    words instead of drawing bars, so the report always has the figure and its reason.
    Returns the importances drawn and the reason (for logs and tests).
    """
    names = list(importance.importances)
    fig, axes = _figure(1, 1, (6.4, max(2.4, 0.9 + 0.45 * len(names))))
    ax = axes[0]
    heading = title or f"hyper-parameter importance for {importance.metric}"
    if names:
        values = [importance.importances[n] for n in names]
        positions = list(range(len(names)))[::-1]  # the largest on top
        ax.barh(positions, values, color="tab:blue", height=0.6)
        ax.set_yticks(positions, names)
        for y, value in zip(positions, values, strict=True):
            ax.text(value, y, f" {value:.2f}", va="center", fontsize="small")
        ax.set_xlim(0, max(1.0, max(values) * 1.15))
        ax.set_xlabel("importance (share of the variance of the final metric; sums to 1)")
        ax.grid(True, axis="x", alpha=0.3)
        note = (
            f"{importance.evaluator} (Optuna, seed {importance.seed}) over "
            f"{importance.completed} completed trials"
        )
    else:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "no importance figure:\n" + _wrap(importance.reason or "", 60),
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        note = f"{importance.evaluator} (Optuna): not computed"
    fig.suptitle(f"{heading}\n{note}", fontsize="medium")
    _save(fig, path)
    return {
        "importances": dict(importance.importances),
        "completed": importance.completed,
        "reason": importance.reason,
    }


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def plot_population(
    tables: SweepTables,
    path: str | os.PathLike,
    metric: str,
    mode: str,
    mutate: Sequence[str],
    interval: int,
    log_parameters: Sequence[str] = (),
    title: str = "",
) -> dict[str, Any]:
    """A PBT population (docs/pbt.md): each member's metric per epoch, its clone events, and
    the schedule of each mutated parameter.

    A clone event is drawn as a dotted line from the parent's value at the generation's last
    epoch to the member's next epoch, with a triangle where the member takes over. Returns
    what was drawn: the members and their clone events as ``(member, generation, parent)``.
    """
    from matplotlib.ticker import MaxNLocator

    history: dict[str, dict[int, float]] = {}
    for row in tables.metrics.to_dict("records"):
        value = row.get(metric)
        history.setdefault(row["trial_id"], {})[int(row["epoch"])] = (
            float(value) if is_finite(value) else math.nan
        )
    members = sorted(set(history) | set(tables.lineage["trial_id"]))
    colors = {m: f"C{i % 10}" for i, m in enumerate(members)}
    lineage = sorted(
        tables.lineage.to_dict("records"), key=lambda r: (r["trial_id"], r["generation"])
    )
    fig, axes = _figure(1 + len(mutate), 1, (7.5, 3.6 * (1 + len(mutate))))
    ax = axes[0]
    for member in members:
        points = sorted(history.get(member, {}).items())
        if points:
            ax.plot(*zip(*points, strict=True), color=colors[member], linewidth=1.2, label=member)
    clones = []
    for row in lineage:
        if not row["cloned"]:
            continue
        generation, member, parent = int(row["generation"]), row["trial_id"], row["parent"]
        clones.append((member, generation, parent))
        at = generation * interval
        start = history.get(parent, {}).get(at)
        after = history.get(member, {}).get(at + 1)
        if start is not None and after is not None:
            ax.plot([at, at + 1], [start, after], color=colors[member], linestyle=":")
        if start is not None:
            ax.plot(at, start, marker="^", color=colors[member], markersize=7, zorder=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_title(title or f"{metric} per epoch; ^ = continues from a copy of another member")
    ax.grid(True, alpha=0.3)
    if members:
        ax.legend(fontsize="small", loc="best")
    for ax, name in zip(axes[1:], mutate, strict=True):
        column = "params_" + name
        for member in members:
            rows = [r for r in lineage if r["trial_id"] == member and column in r]
            if not rows:
                continue
            xs = [int(r["generation"]) * interval for r in rows]
            ys = [r[column] for r in rows]
            ax.step(xs + [xs[-1] + interval], ys + [ys[-1]], where="post", color=colors[member])
        if name in log_parameters:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{name} per generation")
        ax.grid(True, alpha=0.3)
    _save(fig, path)
    return {"members": members, "clones": clones}


def _numeric_axis(ax: Any, xs: Sequence[float], scale: str) -> None:
    """Ticks a person can read: the values themselves when there are few, else 1-2-5 steps."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if scale == "log":
        ax.set_xscale("log")
    label = FuncFormatter(lambda v, _: f"{v:.3g}")
    distinct = sorted(set(xs))
    if 0 < len(distinct) <= 5:
        ax.xaxis.set_major_locator(FixedLocator(distinct))
    elif scale == "log" and distinct:
        decades = math.log10(max(distinct) / min(distinct))
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 2 else (1.0,)))
    else:
        return
    ax.xaxis.set_major_formatter(label)
    ax.xaxis.set_minor_formatter(NullFormatter())
    for tick in ax.get_xticklabels():
        tick.set_rotation(30)


def _category_label(text: str) -> str:
    label = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text
    return label if len(label) <= 12 else label[:11] + "…"


def _last_finite(epochs: Sequence[int], values: Sequence[float]) -> tuple[int, float] | None:
    for epoch, value in zip(reversed(epochs), reversed(values), strict=True):
        if math.isfinite(value):
            return epoch, value
    return None


def _figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _save(fig: Any, path: str | os.PathLike) -> None:
    import matplotlib

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "svg"
    metadata = {"Date": None} if fmt in ("svg", "pdf") else {}
    buffer = io.BytesIO()
    # Text stays text in an SVG (searchable, small); fixed ids make the file reproducible.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "snakesweep"}):
        fig.savefig(buffer, format=fmt, metadata=metadata, dpi=120)
    write_bytes(path, buffer.getvalue())


def plot_metric_by_trial(
    tables: SweepTables,
    path: str | os.PathLike,
    metric: str,
    mode: str,
    order: Sequence[str],
    title: str = "",
    budget: int | None = None,
) -> dict[str, Any]:
    """Each finished trial's last metric against its trial number, the best so far as a
    line, and the rounds marked (strategy tpe: a dashed line where a round starts).

    ``order`` is the plan's trial order (with rounds: round by round, in index order); trial
    number n is ``order[n - 1]``. The best-so-far line runs over the trials eligible as best
    (completed at the full ``budget``), as ``best.yaml`` chooses. Returns what was drawn.
    """
    records = {r["trial_id"]: r for r in trial_records(tables, budget)}
    rounds = {
        row["trial_id"]: row["round"] for row in rows(tables.trials) if row.get("round") is not None
    }
    fig, axes = _figure(1, 1, (7.5, 4.2))
    ax = axes[0]
    best_xs, best_ys, best = [], [], None
    shown = 0
    for number, tid in enumerate(order, start=1):
        record = records.get(tid)
        if record is None or not is_finite(record.get("final")):
            continue
        shown += 1
        status = record.get("status")
        color = STYLES.get(status, OTHER_STYLE)["color"]
        if status == "pruned":
            ax.scatter([number], [record["final"]], s=28, facecolors="none", edgecolors=color)
        else:
            ax.scatter([number], [record["final"]], s=28, color=color, alpha=0.8)
        if best_trial([record], mode, budget=budget) is not None:
            value = float(record["final"])
            if best is None or (value < best if mode == "min" else value > best):
                best = value
        if best is not None:
            best_xs.append(number)
            best_ys.append(best)
    if best_xs:
        ax.step(best_xs, best_ys, where="post", color=BEST_COLOR, label="best so far")
        ax.legend(loc="best", fontsize="small")
    starts = []
    for number, tid in enumerate(order, start=1):
        k = rounds.get(tid)
        if k is not None and (not starts or starts[-1][1] != k):
            starts.append((number, k))
    for number, k in starts:
        ax.axvline(number - 0.5, color="0.6", linestyle="--", linewidth=0.8)
        ax.annotate(
            f"round {k}",
            (number - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color="0.35",
        )
    ax.set_xlim(0.5, max(1, len(order)) + 0.5)
    ax.set_xlabel("trial number" + (" (in round order)" if starts else " (in plan order)"))
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    hidden = len(order) - shown
    notes = []
    if not starts:
        notes.append("one round: every trial was planned up front")
    if hidden:
        notes.append(f"{hidden} trial(s) without a finite {metric} not shown")
    heading = title or f"{metric} against trial number"
    fig.suptitle("\n".join([heading, "; ".join(notes)]).strip(), fontsize="medium")
    _save(fig, path)
    return {
        "shown": shown,
        "hidden": hidden,
        "rounds": [k for _, k in starts],
        "best_so_far": best_ys,
    }
