"""freshrec.cpu: threads and OpenMP's wait policy on a CPU shared with other processes."""

import os
import subprocess
import sys

from freshrec.cpu import cpu_threads, usable_cores


def test_default_leaves_one_core_to_the_rest_of_the_node():
    cores = usable_cores()
    assert cpu_threads(0) == max(1, cores - 1)
    assert cpu_threads(3) == 3  # FRESHREC_CPU_THREADS wins


def test_training_device_takes_the_thread_setting():
    import torch

    from freshrec.inference import pick_device

    before = torch.get_num_threads()
    try:
        pick_device("cpu", 1)
        assert torch.get_num_threads() == 1
        pick_device("cpu", 0)
        assert torch.get_num_threads() == cpu_threads(0)
    finally:
        torch.set_num_threads(before)


def _policy_seen_by_torch(env: dict) -> str:
    code = "import os, freshrec_cli.main, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=300)
    return out.stdout.strip().splitlines()[-1]


def test_the_command_starts_openmp_passive_unless_the_operator_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_seen_by_torch(env) == "PASSIVE"
    assert _policy_seen_by_torch({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
