"""credence_common/runtime/malloc_tuning.py: with the fixed mmap threshold the C allocator gives argon2id's 19 MiB
blocks back on free; with glibc's dynamic threshold it keeps them resident (the soak's finding, docs/reliability.md)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# a fresh process each time (the threshold is process-wide and, once fixed, stays fixed); six identity hashes with a
# few small long-lived allocations between them, as requests leave behind; prints the RSS growth in MiB
PROBE = """
import ctypes, sys
from credence_common.runtime.malloc_tuning import fix_mmap_threshold
from services.identity.domain.passwords import PASSWORD_HASHER

def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
before = rss_mib()
kept = []
for i in range(6):
    PASSWORD_HASHER.hash(f"correct horse {i}")
    kept.append(ctypes.create_string_buffer(100))
print(rss_mib() - before)
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the dynamic threshold is glibc's")


def _growth_mib(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


@glibc_only
def test_with_the_fixed_threshold_the_hashes_memory_is_given_back():
    assert _growth_mib("fixed") < 5  # a hash takes 19 MiB; what stays is the interpreter's own small change


@glibc_only
def test_with_glibcs_dynamic_threshold_a_hash_block_stays_resident():
    # the control: the same probe without the fix keeps at least one 19 MiB block (why the runner sets it)
    assert _growth_mib("dynamic") > 15


def test_the_runner_fixes_the_threshold_before_the_service_runs():
    runner = (REPO / "credence_common/runtime/runner.py").read_text()
    assert runner.index("fix_mmap_threshold()") < runner.index("return run(service_cls")
