"""A process's memory mappings and handing their pages back to the kernel (Linux).

``hydrafed simulate`` runs up to N=29 parties, a fork server and SeaweedFS on one machine, and
pages that a process read once and never touches again still count in the run's memory until the
kernel needs the room. The fork server pages out library pages its imports read
(``worker.processes``) and the SeaweedFS launcher weed's binary (``storage.seaweedfs``); both read
the maps and advise through here. Python 3.11's ``mmap`` module has no MADV_PAGEOUT and no
``process_madvise``, so the C library is called directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from dataclasses import dataclass
from pathlib import Path

MADV_DONTNEED = 4
"""madvise(2) advice: drop these pages; an anonymous page read again is a fresh zero page."""
MADV_PAGEOUT = 21
"""madvise(2) advice (Linux >= 5.4): reclaim these pages now. Clean file pages that no other
process maps leave the page cache; anything written (relocated data) stays, since nothing here
is swapped."""

_SYS_PROCESS_MADVISE = 440
"""process_madvise(2)'s system call number, the same on every architecture (Linux >= 5.10)."""
_IOV_MAX = 1024


@dataclass(frozen=True)
class MappedRange:
    """One line of ``/proc/PID/maps``: an address range and what it maps ("" if anonymous)."""

    low: int
    high: int
    offset: int
    path: str

    @property
    def size(self) -> int:
        return self.high - self.low


def mappings(pid: int | None = None) -> list[MappedRange]:
    """The mappings of process ``pid`` (this one by default); empty without /proc."""
    ranges = []
    with contextlib.suppress(OSError), Path(f"/proc/{pid or 'self'}/maps").open(encoding="utf-8") as lines:
        for line in lines:
            fields = line.split(maxsplit=5)
            low, high = (int(address, 16) for address in fields[0].split("-"))
            path = fields[5].strip() if len(fields) == 6 else ""
            ranges.append(MappedRange(low, high, int(fields[2], 16), path))
    return ranges


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library this process already runs on (glibc on Linux)."""
    library = ctypes.CDLL(None, use_errno=True)
    library.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return library


def advise(low: int, high: int, advice: int) -> bool:
    """madvise(2) on this process's pages from ``low`` to ``high``; whether the kernel took it."""
    return bool(libc().madvise(low, high - low, advice) == 0)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def page_out_file_pages(pid: int) -> int:
    """Ask the kernel to reclaim the file pages that process ``pid`` has mapped; returns the bytes
    advised (0 where process_madvise(2) is refused: it needs CAP_SYS_NICE, or an older kernel).

    A page that is needed again is read back from the file. Pages another process also maps stay.
    """
    spans = [_IoVec(r.low, r.size) for r in mappings(pid) if r.path.startswith("/")]
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return 0
    advised = 0
    try:
        for start in range(0, len(spans), _IOV_MAX):
            batch = spans[start : start + _IOV_MAX]
            done = libc().syscall(
                _SYS_PROCESS_MADVISE,
                ctypes.c_int(pidfd),
                (_IoVec * len(batch))(*batch),
                ctypes.c_size_t(len(batch)),
                ctypes.c_int(MADV_PAGEOUT),
                ctypes.c_uint(0),
            )
            if done < 0:
                break
            advised += done
    finally:
        os.close(pidfd)
    return advised
