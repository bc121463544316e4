"""A run's frames and the process's memory: a freed frame goes back to the system.

Left alone, glibc raises its memory-map threshold once a frame-sized block is freed and keeps
later frames in per-thread heaps that never shrink: through a tetraspanin panel the app's RSS
peaked ~170 MB higher, and a command-line run kept what its frames once took. Allocations of
1 MB and more (frames) in memory maps of their own are returned when freed.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
FRAME_SIZED = 1 << 20  # allocations from 1 MB up (frames): memory maps of their own


def frames_back_to_the_system() -> bool:
    """Frame-sized allocations in maps of their own; True where applied (glibc), elsewhere
    nothing changes."""
    try:
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, FRAME_SIZED))
    except (OSError, AttributeError):
        return False
