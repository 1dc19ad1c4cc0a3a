"""What a training script uses to take part in a sweep: metrics, checkpoints, resume, deadlines.

A few lines adopt it (see the README)::

    session = TrialSession.from_env()
    session.register(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    session.resume()                      # no-op on a fresh trial
    for epoch in session.epochs(args.epochs):
        for batch_indices in session.batches(len(train_set), args.batch_size):
            ...                           # one optimizer step
        scheduler.step()
        session.end_epoch({"val_accuracy": acc, "val_loss": loss})

The session saves every N steps and/or T seconds, at epoch ends (the last one always,
the others unless saving so often would cost more than 1 % of the training time), and
right before a deadline or after SIGTERM/SIGUSR1/SIGUSR2; it then exits with
:data:`~snakesweep.store.contract.EXIT_CONTINUE` so that the workflow runs another
segment, which resumes bit for bit where this one stopped. See docs/checkpointing.md.

In a multi-process trial (DDP, docs/ddp.md) every rank runs a session: the ranks agree
on every save and stop (:mod:`snakesweep.session.ranks`), rank 0 alone writes checkpoints (with
each rank's RNG state), metrics and ASHA reports, and every rank resumes from the same
checkpoint with its own generators.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from snakesweep.search.asha import AshaRungs
from snakesweep.session.checkpoint import load_latest, read_checkpoint, save_checkpoint
from snakesweep.session.deadline import Deadline
from snakesweep.session.kernel_warmup import warm_up_vml
from snakesweep.session.ranks import RankInfo, Ranks, own_state
from snakesweep.session.stop_policy import StopPolicy, parse_margin
from snakesweep.store import contract
from snakesweep.store.atomic import remove_stale_temps, write_bytes
from snakesweep.store.number_format import format_number
from snakesweep.store.trial_folder import append_metrics, metrics_bytes, read_timings, write_metrics

# At import, before the script's first threaded math (data loading and model set-up included):
# a fresh process's first threaded VML call can be wrong on one thread, which would break
# bit-identical resume (snakesweep.session.kernel_warmup).
warm_up_vml()

#: Signals that ask the trial to save at the next step boundary and continue later.
#: SIGINT included: Ctrl-C on a local sweep pauses a trial instead of failing it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
#: Measured timings (step, epoch end, save) for the next segment, beside the checkpoints: a
#: checkpoint cannot hold the duration of its own save. A stop adds its time (``stopped_at``)
#: for the launcher, which measures the exit path from there (``snakesweep.job.launch``).
TIMINGS_FILE = contract.TIMINGS_FILE
#: Assumed save time until one has been measured.
DEFAULT_SAVE_SECONDS = 1.0


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


class TrialSession:
    """One segment of one trial: counts steps and epochs, saves, resumes and stops in time.

    Defaults: in the workflow every checkpoint setting comes from the config (the
    schema's defaults, through the launcher's environment). The constructor's own
    defaults serve a script run by hand and differ from the schema on purpose in one
    place: ``every_seconds`` is 0 (no timed saves; epoch ends and deadlines still
    save) where the schema says 60, because a hand-run script has no job to lose.
    """

    def __init__(
        self,
        trial_dir: str | os.PathLike | None = None,
        *,
        stop_at_epoch: int | None = None,
        every_steps: int = 0,
        every_seconds: float = 0.0,
        keep: int = 2,
        deadline: Deadline | None = None,
        margin_s: float | str = "auto",
        exit_s: float | None = None,
        kill_wait_s: float | None = None,
        data_seed: int = 0,
        handle_signals: bool = True,
        verbose: bool = True,
        max_overhead: float | None = 0.01,
        ranks: Ranks | None = None,
    ) -> None:
        #: This process's rank and the collectives (identities for a one-process trial).
        self.ranks = ranks or Ranks()
        self.trial_dir = Path(trial_dir) if trial_dir is not None else None
        #: Largest share of training time that saves at epoch ends may take (None: save at
        #: every epoch end). The last epoch, stops and periodic saves are not affected.
        #: The cost model: when to stop before the deadline, whether an epoch end saves.
        self.stop_policy = StopPolicy(
            margin_s=parse_margin(margin_s),
            max_overhead=max_overhead,
            exit_s=exit_s,
            kill_wait_s=kill_wait_s,
        )
        self.stop_at_epoch = stop_at_epoch
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.keep = keep
        self.deadline = deadline or Deadline(env={})
        self.data_seed = data_seed
        self.verbose = verbose
        #: ASHA rungs at which this trial may prune itself (set by ``from_env``).
        self.asha: AshaRungs | None = None
        # Progress: epoch = epochs completed; position = batches done in the current epoch.
        self.epoch = 0
        self.position = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.resumes = 0
        self.resumed_from: Path | None = None
        self._objects: dict[str, Stateful] = {}
        self._sums: dict[str, list[float]] = {}
        self._order: torch.Tensor | None = None
        self._steps_per_epoch: int | None = None
        self._stop_signal: int | None = None
        self._final_epoch: int | None = None
        self._training_started = False
        self._last_save = time.monotonic()
        self._step_started = time.monotonic()
        # Timings of this segment (None: not measured yet), and those of the segment before,
        # restored from the checkpoint, as estimates until this segment has measured its own.
        self._max_step_s = 0.0  # the slowest step of this segment but its first (warm-up)
        self._first_step_s: float | None = None
        self._max_epoch_end_s: float | None = None
        self._max_save_s: float | None = None
        self._prior_timings: dict[str, float] = {}
        if handle_signals:
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._on_signal)

    @property
    def margin_s(self) -> float | str:
        """The deadline margin in seconds, or ``"auto"`` (``stop_policy.auto_margin``)."""
        return self.stop_policy.margin_s

    @margin_s.setter
    def margin_s(self, value: float | str) -> None:
        self.stop_policy.margin_s = parse_margin(value)

    @property
    def max_overhead(self) -> float | None:
        return self.stop_policy.max_overhead

    @max_overhead.setter
    def max_overhead(self, value: float | None) -> None:
        self.stop_policy.max_overhead = value

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, trial_dir: str | os.PathLike | None = None, **overrides: Any) -> TrialSession:
        """A session configured by the workflow's environment variables (see ``contract``).

        Outside the workflow (a script run by hand), ``trial_dir`` may name a folder to
        keep metrics and checkpoints in; without one the session keeps nothing on disk.
        """
        env = os.environ
        kwargs: dict[str, Any] = {
            "trial_dir": env.get(contract.ENV_TRIAL_DIR) or trial_dir,
            "stop_at_epoch": _env_int(env, contract.ENV_STOP_AT_EPOCH),
            "every_steps": _env_int(env, contract.ENV_CHECKPOINT_EVERY_STEPS) or 0,
            "every_seconds": _env_float(env, contract.ENV_CHECKPOINT_EVERY_SECONDS, 0.0),
            "keep": _env_int(env, contract.ENV_CHECKPOINT_KEEP) or 2,
            "max_overhead": _env_overhead(env),
            "deadline": Deadline(env=env),
            "margin_s": env.get(contract.ENV_DEADLINE_MARGIN) or "auto",
            "exit_s": _env_optional_float(env, contract.ENV_EXIT_SECONDS),
            "kill_wait_s": _env_optional_float(env, contract.ENV_KILL_WAIT),
        }
        if "ranks" not in overrides:
            kwargs["ranks"] = Ranks(RankInfo.from_env(env))
        kwargs.update(overrides)
        kwargs["ranks"].start()  # joins the process group of a multi-process trial
        session = cls(**kwargs)
        session.asha = AshaRungs.from_env(env)
        return session

    @property
    def rank(self) -> int:
        return self.ranks.rank

    @property
    def world_size(self) -> int:
        return self.ranks.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and reports."""
        return self.ranks.is_main

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's share of a batch from :meth:`batches` (every ``world_size``-th item)."""
        return batch[self.rank :: self.world_size] if self.world_size > 1 else batch

    def register(self, **objects: Stateful) -> None:
        """Objects whose ``state_dict`` goes into every checkpoint (model, optimizer, scheduler, scaler)."""
        self._objects.update(objects)

    # -- resume -------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path | None:
        return self.trial_dir / contract.CHECKPOINT_DIR if self.trial_dir else None

    def resume(self) -> bool:
        """Load the newest good checkpoint, if any, into the registered objects and the RNGs."""
        if self.checkpoint_dir is None:
            return False
        found = self._load_latest()
        if found is None:
            self._rewrite_metrics()
            return False
        state, path = found
        missing = sorted(set(self._objects) - set(state["objects"]))
        if missing:
            raise RuntimeError(f"checkpoint {path} has no state for {missing}")
        for name, obj in self._objects.items():
            obj.load_state_dict(state["objects"][name])
        mine = own_state(state, self.ranks.info)  # this rank's generators and sums
        _set_rng_state(mine["rng"])
        self.epoch = state["epoch"]
        self.position = state["position"]
        self.global_step = state["global_step"]
        self.history = list(state["history"])
        self.data_seed = state["data_seed"]
        self._order = state["order"]
        self._sums = {k: list(v) for k, v in mine["sums"].items()}
        self.resumes = state["resumes"] + 1
        self.resumed_from = path
        self._prior_timings = {**(state.get("timings") or {}), **self._read_timings()}
        self._rewrite_metrics()
        self._say(
            f"resumed from {path.name}: epoch {self.epoch}, batch {self.position}, "
            f"step {self.global_step} (resume #{self.resumes})"
        )
        return True

    def apply_hparams(
        self, optimizer: torch.optim.Optimizer, scheduler: Any = None, **values: float
    ) -> None:
        """Put this segment's hyper-parameters over what :meth:`resume` restored.

        Call it right after ``resume()`` with the values the script received as arguments,
        e.g. ``session.apply_hparams(optimizer, scheduler, lr=args.lr,
        weight_decay=args.weight_decay)``. A restored optimizer keeps the values it was saved
        with; under population based training (docs/pbt.md) a segment that starts from a copy
        of another member's checkpoint, or with a perturbed value, must train with the new one.

        Each name is a key of the optimizer's ``param_groups``. For ``lr`` with a scheduler
        that has ``base_lrs`` (every torch scheduler), the value is the new base rate: the
        scheduler's ``base_lrs`` (and each group's ``initial_lr``) become ``value`` and the
        current rate is scaled by ``value / old base``, so that the schedule goes on where it
        was with the new base. Unchanged values change nothing, bit for bit (the factor is
        exactly 1.0), so the call is safe on a fresh start and after every resume.
        """
        for name, value in values.items():
            value = float(value)
            for index, group in enumerate(optimizer.param_groups):
                if name not in group:
                    raise KeyError(
                        f"apply_hparams: the optimizer has no {name!r} in its param_groups "
                        f"(it has {sorted(k for k in group if k != 'params')})"
                    )
                if name == "lr" and scheduler is not None and hasattr(scheduler, "base_lrs"):
                    old_base = float(scheduler.base_lrs[index])
                    group["lr"] = group["lr"] * (value / old_base) if old_base else value
                    scheduler.base_lrs[index] = value
                    if "initial_lr" in group:
                        group["initial_lr"] = value
                    last = getattr(scheduler, "_last_lr", None)
                    if last is not None and index < len(last):
                        last[index] = group["lr"]
                else:
                    group[name] = value

    def _load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest good checkpoint: rank 0 looks (setting damaged ones aside), the
        others read the one it chose."""
        found = load_latest(self.checkpoint_dir) if self.is_main else None
        if not self.ranks.distributed:
            return found
        chosen = self.ranks.broadcast(str(found[1]) if found else None)
        if self.is_main or chosen is None:
            return found
        return read_checkpoint(chosen), Path(chosen)

    # -- the loops ----------------------------------------------------------------------------
    def epochs(self, total: int) -> Iterator[int]:
        """Epoch indices still to train (0-based), stopping early at a rung's budget."""
        stop = total if self.stop_at_epoch is None else min(total, self.stop_at_epoch)
        self._final_epoch = stop
        if self.epoch >= stop and self.resumed_from is not None:
            self._say(f"nothing left to train: {self.epoch} epochs done, {stop} asked for")
        while self.epoch < stop:
            before = self.epoch
            yield self.epoch
            if self.epoch == before:
                raise RuntimeError("call session.end_epoch(metrics) at the end of every epoch")

    def batches(self, n_items: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Index batches of the current epoch in a seeded order, from where a resume left off.

        The order depends only on ``(data_seed, epoch)``; the code after each ``yield``
        runs once the caller has taken its optimizer step, and may checkpoint or stop.
        """
        if self._order is None or len(self._order) != n_items:
            generator = torch.Generator().manual_seed(self.data_seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(n_items, generator=generator)
        self._steps_per_epoch = math.ceil(n_items / batch_size)
        if not self._training_started:
            # "Every T seconds of training": count from the first batch of this segment,
            # not from process start (imports, data loading, resume).
            self._training_started = True
            if self._max_save_s is None:
                self._last_save = time.monotonic()
        for index in range(self.position, self._steps_per_epoch):
            self._step_started = time.monotonic()
            yield self._order[index * batch_size : (index + 1) * batch_size]
            self.position = index + 1
            self.global_step += 1
            took = time.monotonic() - self._step_started
            if self._first_step_s is None:
                self._first_step_s = took  # allocations, lazy init: often far slower
            else:
                self._max_step_s = max(self._max_step_s, took)
            self._step_boundary()
        self._epoch_end_started = time.monotonic()

    def track(self, name: str, value: float, weight: float = 1.0) -> None:
        """Add to a running mean over the epoch (a training loss, say).

        The sums are checkpointed, so an epoch interrupted mid-way reports the same
        mean as an uninterrupted one. ``end_epoch`` reports the means and resets them.
        """
        entry = self._sums.setdefault(name, [0.0, 0.0])
        entry[0] += float(_plain(value)) * weight
        entry[1] += weight

    def end_epoch(self, metrics: Mapping[str, float] | None = None) -> None:
        """Record the epoch's metrics, checkpoint, and stop if the next step cannot fit.

        The last epoch (``--epochs`` or the rung's budget) always saves and never stops:
        the script goes on to exit 0 by itself. Other epoch ends save when a periodic
        save is due or when the save costs at most ``max_overhead`` of the time since
        the last one; before a stop (deadline, signal, ASHA) they always save.
        """
        started = getattr(self, "_epoch_end_started", time.monotonic())
        means = {k: (s / w if w else float("nan")) for k, (s, w) in self._sums.items()}
        self.epoch += 1
        self.position = 0
        self._order = None
        self._sums = {}
        merged = {**means, **(metrics or {})}
        record = {"epoch": self.epoch, **{k: _plain(v) for k, v in merged.items()}}
        self.history.append(record)
        final = self._final_epoch is not None and self.epoch >= self._final_epoch
        (saved,) = self.ranks.any(final or self._periodic_due() or self._epoch_save_worth_it())
        if saved:
            self.save()
        if self.trial_dir is not None and self.is_main:
            append_metrics(self.trial_dir, record)
        self._say(
            f"epoch {self.epoch}: "
            + " ".join(f"{k}={format_number(v)}" for k, v in record.items() if k != "epoch")
        )
        self._max_epoch_end_s = max(self._max_epoch_end_s or 0.0, time.monotonic() - started)
        if saved and self.checkpoint_dir is not None:
            self._write_timings()  # now with this epoch end's duration
        if self.asha is not None and self._pruned(record):
            if not saved:
                self.save()
            self._say(f"pruned by ASHA at epoch {self.epoch}: not in the top 1/{self.asha.eta}")
            sys.stdout.flush()
            sys.exit(contract.EXIT_PRUNED)
        if final:
            return  # done: a late signal or a near deadline must not turn this into a continue
        # Stop unless the first step of the next epoch fits (and the next epoch's end too,
        # when that epoch is a single step).
        next_work = self._step_estimate()
        if self._steps_per_epoch == 1:
            next_work += self._epoch_end_estimate()
        reason = self._agreed_stop_reason(next_work_s=next_work)
        if reason:
            if not saved:
                self.save()
            self._leave(reason)

    def _pruned(self, record: Mapping[str, Any]) -> bool:
        """ASHA's verdict: rank 0 reports and decides, every rank follows."""
        assert self.asha is not None
        (pruned,) = self.ranks.any(
            self.is_main and not self.asha.should_continue(self.epoch, record)
        )
        return pruned

    def _epoch_save_worth_it(self) -> bool:
        """Save at this epoch end? Yes, unless the last save is so recent that saving again
        would spend more than ``max_overhead`` of the training time since then on saving
        (short epochs); the periodic saves bound what a kill can lose either way."""
        return self.stop_policy.epoch_save_worth_it(
            time.monotonic() - self._last_save, self._save_estimate()
        )

    # -- saving and stopping --------------------------------------------------------------------
    def save(self) -> Path | None:
        """Checkpoint now (atomically; keeps the newest ``keep``)."""
        if self.checkpoint_dir is None:
            return None
        started = time.monotonic()
        # Each rank's own generators and running sums, on rank 0, which alone writes.
        per_rank = self.ranks.gather({"rng": _get_rng_state(), "sums": self._sums})
        path = self._write_checkpoint(per_rank) if self.is_main else None
        self.ranks.barrier()  # no rank goes on (or exits) before the checkpoint is complete
        elapsed = time.monotonic() - started
        self._max_save_s = max(self._max_save_s or 0.0, elapsed)
        self._last_save = time.monotonic()
        self._write_timings()
        return path

    def _write_checkpoint(self, per_rank: list[dict[str, Any]] | None) -> Path:
        assert per_rank is not None and self.checkpoint_dir is not None
        state = {
            "objects": {name: obj.state_dict() for name, obj in self._objects.items()},
            "rng": per_rank[0]["rng"],
            "epoch": self.epoch,
            "position": self.position,
            "global_step": self.global_step,
            "history": self.history,
            "data_seed": self.data_seed,
            "order": self._order,
            "sums": self._sums,
            "resumes": self.resumes,
            "saved_at": time.time(),
            "timings": self._timings(),
        }
        if self.ranks.distributed:
            state["ranks"] = per_rank
        return save_checkpoint(self.checkpoint_dir, self.global_step, state, keep=self.keep)

    def _step_boundary(self) -> None:
        steps = self._steps_per_epoch or 0
        saved = False
        # A periodic save is due every N steps / T seconds, but not after an epoch's last
        # step: end_epoch saves a moment later anyway. It comes before the stop check so
        # that the check sees the time it took.
        due = self.position < steps and self._periodic_due()
        if self.every_seconds and self.ranks.distributed:
            (due,) = self.ranks.any(due)  # a timed save is due on one rank's clock: on all
        if due:
            self.save()
            saved = True
        # What must still fit before the deadline if we go on: the next step, and the
        # epoch's end when that step is the epoch's last (or when only the end is left).
        if self.position + 1 < steps:
            next_work = self._step_estimate()
        elif self.position + 1 == steps:
            next_work = self._step_estimate() + self._epoch_end_estimate()
        else:
            next_work = self._epoch_end_estimate()
        reason = self._agreed_stop_reason(next_work_s=next_work)
        if reason is None:
            return
        if not saved:
            guessed = self._save_time_unknown()
            self.save()
            # The save had to happen anyway; if its time was only guessed (no save yet in
            # this trial), look again with the measured time: a segment must not give up
            # after each first step because a default guess does not fit a short deadline.
            if guessed:
                reason = self._agreed_stop_reason(next_work_s=next_work)
                if reason is None:
                    return
        self._leave(reason)

    def _periodic_due(self) -> bool:
        return bool(
            (self.every_steps and self.global_step % self.every_steps == 0)
            or (self.every_seconds and time.monotonic() - self._last_save >= self.every_seconds)
        )

    def _timings(self) -> dict[str, float]:
        """Measured timings (this segment's, else the previous one's) for the next segment."""
        measured = {
            "step_s": self._max_step_s or self._first_step_s,
            "epoch_end_s": self._max_epoch_end_s,
            "save_s": self._max_save_s,
        }
        timings = dict(self._prior_timings)
        timings.update({k: v for k, v in measured.items() if v is not None})
        return timings

    def _step_estimate(self) -> float:
        """Seconds one step takes: the slowest of this segment, the warm-up step aside."""
        if self._max_step_s:
            return self._max_step_s
        return self._first_step_s or 0.0

    def _write_timings(self, **extra: float) -> None:
        # A hint only: no fsync (a few ms on slow file systems), rewritten by every save.
        if not self.is_main:
            return
        data = {**self._timings(), **extra}
        write_bytes(self.checkpoint_dir / TIMINGS_FILE, json.dumps(data).encode(), durable=False)

    def _read_timings(self) -> dict[str, float]:
        if self.is_main:
            remove_stale_temps(self.checkpoint_dir, TIMINGS_FILE)
        timings = read_timings(self.checkpoint_dir.parent)
        timings.pop("stopped_at", None)  # the last stop's moment, for the launcher only
        return timings

    def _save_time_unknown(self) -> bool:
        return self._max_save_s is None and "save_s" not in self._prior_timings

    def _save_estimate(self) -> float:
        """Seconds one save takes: measured in this segment, else in the one before, else a guess."""
        if self._max_save_s is not None:
            return self._max_save_s
        return float(self._prior_timings.get("save_s", DEFAULT_SAVE_SECONDS))

    def _epoch_end_estimate(self) -> float:
        """Seconds from an epoch's last step to the end of ``end_epoch`` (validation, save)."""
        if self._max_epoch_end_s is not None:
            return self._max_epoch_end_s
        prior = self._prior_timings.get("epoch_end_s")
        return float(prior) if prior is not None else self._save_estimate()

    def _stop_reason(self, next_work_s: float) -> str | None:
        """Why this segment must stop now (a signal, or a deadline too near), or ``None``."""
        if self._stop_signal is not None:
            return f"received {signal.Signals(self._stop_signal).name}: saving and stopping"
        if self.checkpoint_dir is None:
            return None
        return self.stop_policy.deadline_reason(
            self.deadline.at(), next_work_s, self._save_estimate()
        )

    def _agreed_stop_reason(self, next_work_s: float) -> str | None:
        """The stop decision of all ranks at this step boundary: a stop asked for on any rank
        (its signal, its view of the deadline) stops every rank here, and the ranks that did
        not decide say which of the two it was."""
        reason = self._stop_reason(next_work_s)
        if not self.ranks.distributed:
            return reason
        signalled = self._stop_signal is not None
        signal_elsewhere, deadline_elsewhere = self.ranks.any(
            signalled, reason is not None and not signalled
        )
        if reason is None and signal_elsewhere:
            reason = "another rank received a stop signal: saving and stopping"
        elif reason is None and deadline_elsewhere:
            reason = "another rank cannot fit another step before the deadline: saving and stopping"
        return reason

    def _leave(self, reason: str) -> None:
        """Exit so that the workflow continues this trial in a new segment (state already saved)."""
        self._say(reason)
        self._say(
            f"checkpointed at epoch {self.epoch}, batch {self.position}, step {self.global_step}; "
            "continuing in a new job"
        )
        sys.stdout.flush()
        if self.checkpoint_dir is not None:
            # When the exit path starts: the launcher measures from here to the job's requeue.
            self._write_timings(stopped_at=time.time())
        # Python's final garbage collections walk every object torch & co. created: 1-2 s
        # on the way out, eaten from the deadline margin. Frozen objects are skipped (and
        # still freed); finally blocks and atexit handlers run as usual.
        gc.freeze()
        sys.exit(contract.EXIT_CONTINUE)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    # -- helpers --------------------------------------------------------------------------------
    def _rewrite_metrics(self) -> None:
        """Make metrics.jsonl match the checkpoint: drop epochs reported after the last save."""
        if self.trial_dir is None or not self.is_main:
            return
        path = self.trial_dir / contract.METRICS_FILE
        remove_stale_temps(self.trial_dir, contract.METRICS_FILE)
        if path.exists() and path.read_bytes() == metrics_bytes(self.history):
            return  # already right (a finished trial resumed, say): leave the file alone
        write_metrics(self.trial_dir, self.history)

    def _say(self, message: str) -> None:
        if self.verbose and self.is_main:
            print(f"[snakesweep] {message}", flush=True)


def _get_rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    return int(env[name]) if env.get(name) else None


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    return float(env[name]) if env.get(name) else default


def _env_optional_float(env: Mapping[str, str], name: str) -> float | None:
    return float(env[name]) if env.get(name) else None


def _env_overhead(env: Mapping[str, str]) -> float | None:
    value = env.get(contract.ENV_CHECKPOINT_MAX_OVERHEAD, "")
    if value.lower() in ("none", "null"):
        return None
    return float(value) if value else 0.01
