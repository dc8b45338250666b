"""CPU threads for PyTorch on a machine shared with PostgreSQL, Prefect and serving.

With OpenMP's default (active) wait policy, idle PyTorch threads spin, and when other processes want the cores
a multi-threaded step collapses below single-thread speed (MiniLM LoRA on 2 cores under load: 6.2 examples/s
with 2 spinning threads, 16.3 with 1, 15.7 with 2 passive ones; bench.threads measures it). So freshrec's
processes start with OMP_WAIT_POLICY=PASSIVE unless the environment says otherwise (OpenMP reads it once, when
the runtime loads with torch: the CLI applies OPENMP_DEFAULTS before anything imports torch; the Docker image
sets it too), and training leaves one core to the rest of the node unless FRESHREC_CPU_THREADS says otherwise.
"""

from __future__ import annotations

import os

# Process-level defaults for the OpenMP runtime (which only reads the environment); applied with setdefault by
# the entry points, so an operator's own OMP_WAIT_POLICY wins.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which container CPU sets narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cpu_threads(requested: int = 0) -> int:
    """PyTorch intra-op threads: `requested` when > 0, else all usable cores but one (at least one)."""
    if requested > 0:
        return requested
    return max(1, usable_cores() - 1)
