"""The C allocator's settings for a service process (called by runner.py before the service starts).

Why: identity hashes every password with argon2id at 19 MiB a hash (services/identity/domain/passwords.py), a
block the argon2 C library takes from malloc and frees at once. glibc serves a block that large with mmap and
gives it back on free, but the first such free raises its *dynamic* mmap threshold to the block's size, and its
trim threshold to twice that: from then on every hash is carved out of the heap, and a freed 19 MiB block, under
the 38 MiB trim threshold (or below a small allocation left above it), stays resident. The soak (bench/soak.py,
docs/reliability.md "Soak") saw identity's resident memory climb for as long as it ran. A fixed threshold keeps
every large block mapped and returned on free. 128 KiB is glibc's own default, what a process does anyway until
its first large free: blocks of 128 KiB or more each cost a mapping and its page faults, as they do in a fresh
process (the soak's run of record is with it; a larger value would do for argon2 but is unmeasured).
"""

from __future__ import annotations

import ctypes
import logging

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024

log = logging.getLogger(__name__)


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold once and for all (setting it turns the dynamic adjustment of both thresholds
    off). Returns False, and changes nothing, where the C library has no mallopt or refuses it (macOS, musl):
    those allocators do not have the dynamic threshold this works around."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, the C library's among them (no ldconfig)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, threshold_bytes) != 1:
        log.warning(
            "mallopt(M_MMAP_THRESHOLD, %d) was refused; the C allocator keeps its dynamic threshold", threshold_bytes
        )
        return False
    return True
