"""``python -m vizcore train`` whose rank 1 dies at its fourth step (for tests/train/test_distributed.py)."""

import os
import sys

import vizcore.train.trainer as training
from vizcore.app.cli import main

_check = training._check_finite


def _dying(loss, step, world=None):  # noqa: ANN001, ANN202 - the trainer's own signature
    if os.environ.get("RANK") == "1" and step == 3:
        os._exit(3)  # no clean-up, as a killed process or a crashed GPU
    return _check(loss, step, world)


training._check_finite = _dying
sys.exit(main(sys.argv[1:]))
