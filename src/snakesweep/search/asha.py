"""Asynchronous successive halving (ASHA) through per-trial report files.

When a trial finishes a rung's budget it writes ``<dir>/rung-<budget>/<trial_id>.json``
(atomically: safe on NFS, no database, no locks), reads its peers' reports at
that rung, and decides with :func:`snakesweep.search.pruning.asha_decision` whether to
go on. The decision is written into its report, so a resumed trial that had
already passed a rung never decides again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakesweep.search.pruning import asha_decision
from snakesweep.store import contract
from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json


@dataclass(frozen=True)
class AshaRungs:
    """One trial's view of the sweep's ASHA rungs."""

    directory: Path
    trial_id: str
    rungs: tuple[int, ...]
    eta: int
    min_peers: int
    metric: str
    mode: str
    #: Where the peers' reports are (with rounds: the earlier rounds' folders, all finished);
    #: None: the trial's own folder, shared by every trial of the sweep.
    peer_dirs: tuple[Path, ...] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AshaRungs | None:
        """The ASHA settings the workflow passed, or ``None`` when ASHA is off."""
        env = os.environ if env is None else env
        if not env.get(contract.ENV_ASHA_DIR):
            return None
        peers = env.get(contract.ENV_ASHA_PEER_DIRS)
        return cls(
            directory=Path(env[contract.ENV_ASHA_DIR]),
            trial_id=env[contract.ENV_TRIAL_ID],
            rungs=tuple(int(b) for b in env[contract.ENV_ASHA_RUNGS].split(",") if b),
            eta=int(env[contract.ENV_ASHA_ETA]),
            min_peers=int(env[contract.ENV_ASHA_MIN_PEERS]),
            metric=env[contract.ENV_METRIC],
            mode=env[contract.ENV_MODE],
            peer_dirs=None
            if peers is None
            else tuple(Path(d) for d in peers.split(os.pathsep) if d),
        )

    def should_continue(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """Report ``metrics`` if ``epoch`` ends a rung (not the last) and decide whether to go on."""
        if epoch not in self.rungs[:-1]:
            return True
        folder = self.directory / f"rung-{epoch}"
        own_path = folder / f"{self.trial_id}.json"
        if own_path.exists():
            previous = read_json(own_path)
            if previous is not None and "continue" in previous:
                return bool(previous["continue"])
        score = metrics.get(self.metric)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(own_path, {"trial_id": self.trial_id, "score": score})
        peers = []
        peer_folders = (
            [folder] if self.peer_dirs is None else [d / folder.name for d in self.peer_dirs]
        )
        for path in sorted(p for f in peer_folders for p in f.glob("*.json")):
            if path.name == own_path.name:
                continue
            report = read_json(path)
            if report is not None:
                peers.append(report.get("score"))
        go_on = asha_decision(score, peers, self.eta, self.mode, self.min_peers)
        write_json(
            own_path,
            {"trial_id": self.trial_id, "score": score, "peers": len(peers), "continue": go_on},
        )
        return go_on
