#!/usr/bin/env python
"""Example snakesweep training script: an MLP on scikit-learn's handwritten digits.

It is the template to copy for your own script. The contract with the workflow:

* every hyper-parameter arrives as its own ``--name=value`` argument (plus ``--epochs``);
* metrics go through ``TrialSession.end_epoch`` (one JSON line per epoch in
  ``metrics.jsonl``); the metric named in the sweep config must be among them;
* exit 0 when done; the session exits with 75 by itself when it checkpointed
  before a deadline or after SIGTERM, and the workflow continues the trial.

With ``resources.processes_per_node: 2`` (or under ``torchrun``) it trains with
DistributedDataParallel: gloo on CPU, NCCL on GPUs; each rank trains on its share of
every batch (``session.shard``) and rank 0 alone writes (docs/ddp.md).

By hand: ``python scripts/train.py --lr 0.01 --epochs 5`` prints metrics; add
``--trial-dir runs/try1`` to keep metrics and checkpoints (and resume from them).
The data (1,797 8×8 digit images) ships inside scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from snakesweep.session import TrialSession


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--width", type=int, default=64, help="hidden units per layer")
    p.add_argument("--depth", type=int, default=2, help="hidden layers")
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument(
        "--momentum",
        type=float,
        default=None,
        help="SGD momentum (default 0.9); sgd only: sweep it with `when: {optimizer: sgd}`",
    )
    p.add_argument("--seed", type=int, default=0, help="model init and data order")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--trial-dir", default=None, help="keep metrics/checkpoints here (by hand)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (CUDA)"
    )
    args = p.parse_args(argv)
    if args.momentum is not None and args.optimizer != "sgd":
        p.error(f"--momentum applies to --optimizer sgd only, not {args.optimizer}")
    return args


def load_data(device: torch.device) -> tuple[torch.Tensor, ...]:
    """A fixed 80/20 split of the digits data, features scaled to [0, 1]."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(12345))
    n_val = len(x) // 5
    val, train = order[:n_val], order[n_val:]
    return tuple(t.to(device) for t in (x[train], y[train], x[val], y[val]))


def build_model(width: int, depth: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    size = 64
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
        size = width
    layers.append(nn.Linear(size, 10))
    return nn.Sequential(*layers)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    # First: in a multi-process trial this joins the process group (gloo, or NCCL on GPUs).
    session = TrialSession.from_env(args.trial_dir, data_seed=args.seed)
    device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
    amp = use_cuda and args.amp != "off"
    torch.manual_seed(args.seed)

    x_train, y_train, x_val, y_val = load_data(device)
    model = build_model(args.width, args.depth, args.dropout).to(device)
    # Ranks > 1: gradients averaged over the ranks; `model` (checkpointed) is the same module.
    net = model
    if session.world_size > 1:
        net = DistributedDataParallel(model)  # starts from rank 0's weights
        torch.manual_seed(args.seed * 1000 + session.rank)  # each rank its own dropout masks
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=args.lr,
            momentum=0.9 if args.momentum is None else args.momentum,
            weight_decay=args.weight_decay,
        )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    loss_fn = nn.CrossEntropyLoss()

    session.register(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    session.resume()
    # This segment's values over what the checkpoint restored: under PBT (docs/pbt.md) a
    # generation may start from another member's checkpoint, or with a perturbed lr.
    session.apply_hparams(optimizer, scheduler, lr=args.lr, weight_decay=args.weight_decay)

    for _epoch in session.epochs(args.epochs):
        model.train()
        for batch in session.batches(len(x_train), args.batch_size):
            idx = session.shard(batch).to(device)  # the whole batch in a one-process trial
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = loss_fn(net(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            session.track("train_loss", loss.item(), weight=len(idx))
        scheduler.step()
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(x_val).float()
            val_loss = loss_fn(logits, y_val).item()
            val_accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        session.end_epoch(
            {
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            }
        )


if __name__ == "__main__":
    main()
