"""The start method of the project's process pools, decided in one place.

* ``pool_context()`` - forkserver (spawn where there is none): for callers that may already have
  torch/OpenMP thread pools or CUDA running (the split runner, IEIT's enhancement workers), which
  a fork would copy mid-flight. Like any spawning pool, a script that starts one needs an
  ``if __name__ == '__main__':`` guard.
* ``pool_context(fork=True)`` - fork where the platform has it (workers start at once and the
  caller's script needs no guard), else the above: for the data generator, whose workers set one
  torch thread in their initializer so no OpenMP pool is shared across the fork.
"""

from __future__ import annotations

import multiprocessing


def pool_context(fork: bool = False):
    methods = multiprocessing.get_all_start_methods()
    if fork and "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
