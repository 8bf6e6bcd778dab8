"""An MPI job of two processes whose rank 1 never joins: rank 0, the ``xpnet train
--distributed`` command, waits for it inside its first collective (joining the job, where
Python runs no signal handler) until the test sends it SIGTERM.

    mpiexec -n 2 python tests/mpi_stuck.py FOLDER

Rank 0 writes its process id to ``FOLDER/waiting`` as it goes into the collective.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

folder = Path(sys.argv[1])
if MPI.COMM_WORLD.Get_rank() == 1:
    time.sleep(300)  # alive, in MPI's job, and never in a collective
    sys.exit(0)

from xpnet import cli, distributed  # noqa: E402 - rank 1 never needs them

join = distributed.init


def join_and_say() -> Any:
    (folder / "waiting").write_text(str(os.getpid()))
    return join()


distributed.init = join_and_say
save = str(folder / "model.safetensors")
sys.exit(cli.main(["train", "--distributed", "--no-progress", "--epochs", "1", "--save", save]))
