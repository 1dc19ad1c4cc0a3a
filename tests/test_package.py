"""What the package root promises a training script."""

import subprocess
import sys


def test_trial_session_is_importable_from_the_package_root_without_eager_torch():
    code = (
        "import sys, snakesweep\n"
        "assert 'torch' not in sys.modules, 'importing snakesweep imported torch'\n"
        "from snakesweep import TrialSession\n"
        "from snakesweep.session import TrialSession as Direct\n"
        "assert TrialSession is Direct\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
