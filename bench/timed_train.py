#!/usr/bin/env python
"""scripts/train.py, timed (bench/small_trials.py): when this process reached its first line,
when the demo script's imports were done, and when its training ended, written to
``bench-times.json`` in the trial folder, so that a trial's overhead is measured in the same
run as its training, whatever else loads the machine."""

import json
import os
import sys
import time

FIRST_LINE = time.time()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import train  # noqa: E402 (torch, scikit-learn and snakesweep.session: what every trial imports)

IMPORTED = time.time()
train.main(sys.argv[1:])
ENDED = time.time()
trial_dir = os.environ["SNAKESWEEP_TRIAL_DIR"]
with open(os.path.join(trial_dir, "bench-times.json"), "w") as f:
    json.dump({"first_line": FIRST_LINE, "imported": IMPORTED, "ended": ENDED}, f)
