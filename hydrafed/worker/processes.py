"""Where party processes come from and how they are scheduled: a fork server, at lower priority.

``hydrafed simulate`` runs N parties as N processes on one machine. Spawned from scratch, each
imported torch, then pycardano (type-checked at import: about 2.5 s of CPU) and, with its first
``torch.optim`` optimiser, ``torch._dynamo`` (another second): 10 parties on 2 cores spent ~30 s
starting. A fork server imports ``PRELOAD`` once and forks every party from there. What it
imports is on the critical path of every run's start-up, so it was trimmed: the party's path no
longer imports pycardano (``hydra.primitives``, raw keys: 0.95 s of CPU) nor ``torch.optim``
(``training.SGD``), whose first use imported ``torch._dynamo`` (1.4-2.8 s).
Unlike plain fork, the server never copies the parent's threads (the devnet, rich's refresh)
or its event loop.

This module stays free of torch so that the CLI can start the server before its own imports.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import mmap
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import select
import signal
import struct
import threading
import time
from pathlib import Path

from hydrafed import pages

HEAVY = (
    "torch",
    "hydrafed.worker.production",
    "hydrafed.worker.tasks",
    "hydrafed.worker.party_process",
    "hydrafed.worker.supervisor",
    "hydrafed.cli",
)
"""What every party imports, imported once in the fork server (``preload``).

``hydrafed.cli`` is here because multiprocessing re-runs the parent's main script in every child
(as ``__mp_main__``): the ``hydrafed`` console script imports the CLI (typer, click, rich), 27 ms
of CPU per party when not preloaded.

The worker's transports (``production``: hydra client, aiohttp) are here too, and for a run on
S3 ``S3_CLIENTS`` (boto3, botocore): imported in each party they were private to it. N=29 on
SeaweedFS, 3 rounds, summed PSS of the tree sampled every 2 s: 8375 MiB with torch and the round
loop preloaded alone (the parties 7242 MiB of it), 4969 MiB with these, ``gc.freeze`` and
``release_freed_memory`` (the parties 3862 MiB), 3912 MiB once simulate's parent stopped
importing torch (parent 450 -> 135 MiB; parties 3202 MiB, ~110 MiB each: still over the 2 GB
goal)."""

S3_CLIENTS = "hydrafed.storage.s3"
"""Preloaded only for a run whose parties use S3 (``preloaded_modules``): boto3 and botocore were
0.27 s of the server's CPU before the first party could fork, paid by local-bucket runs too."""


def preloaded_modules() -> tuple[str, ...]:
    """``HEAVY``, and the S3 clients when this process names an S3 endpoint for its parties
    (``storage.S3_PRELOAD_ENDPOINT_ENV``, set by ``hydrafed simulate --store seaweedfs``)."""
    # Here, not at the top: the storage package imports the spec, which the CLI's start need not.
    from hydrafed.storage.base import S3_PRELOAD_ENDPOINT_ENV

    return (*HEAVY, S3_CLIENTS) if os.environ.get(S3_PRELOAD_ENDPOINT_ENV) else HEAVY


PRELOAD = ("hydrafed.worker.preload",)
"""The fork server's only preload: a module whose import runs ``preload``."""


def preload() -> None:
    """Import ``preloaded_modules()``, then move everything allocated so far out of the
    collector's reach.

    Run once in the fork server. Without ``gc.freeze()`` every party's first collections walk
    the preloaded objects and write to their headers, copying nearly every page it shares with
    the server. No collection runs before the freeze: after these imports it walked ~266,000
    objects for 0.14 s of CPU on the start-up's critical path and found ~300 unreachable ones,
    no memory worth having back. An import that fails here is left for the party to meet again,
    inside its own error report (the server must not die of it).
    """
    one_malloc_arena()
    for name in preloaded_modules():
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    release_import_pages()
    discard_cublaslt_static_data()
    gc.freeze()
    # The server holds nothing to flush or clean up when simulate ends; a full interpreter
    # shutdown only lets native extensions (triton's nanobind, via torch._dynamo) print
    # "nanobind: leaked ... functions!" over the run's results. Parties it forks leave through
    # os._exit already, so this handler never runs in them.
    atexit.register(os._exit, 0)


PartyContext = multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext


def party_context() -> PartyContext:
    """The multiprocessing context for party and baseline processes (spawn where fork is missing)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


def start_early() -> None:
    """Start the fork server now, so that its imports overlap the caller's own start-up."""
    if party_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


PARTY_NICENESS = 5
"""How much lower than the parent a party process is scheduled.

The parent runs the devnet, which stands in for the hydra-nodes each party would have on its
own machine. With N parties training on a few cores, an announcement's path through the node
(HTTP, validation, snapshot) queued behind their CPU: at N=10 on 2 cores the round's critical
path, and so the time no party trains, shrank by about a quarter when the parties yield to it.
"""


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the kernel (glibc keeps them for reuse by default).

    Called in a party once its task is built: loading and splitting the dataset leaves ~30 MiB
    of freed heap that the party would otherwise hold for the whole run (x N parties).
    """
    with contextlib.suppress(OSError, AttributeError):
        pages.libc().malloc_trim(0)


_M_ARENA_MAX = -8
"""mallopt(3) parameter: the most malloc arenas a process creates for its threads."""


def one_malloc_arena() -> bool:
    """Make every thread of this process and of those it forks allocate from the main arena.

    glibc gives each thread that allocates an arena of its own (up to 8 per core), and a party
    runs its training, downloads and folds in worker threads (``asyncio.to_thread``, the
    S3 transfer threads): each party grew a second heap of 10-14 MiB beside its main one, and
    what one phase freed in one arena another phase could not reuse from the other. At N=29
    (SeaweedFS, 3 rounds, 3 runs each, alternated) the tree's summed PSS peaked at 1756-1823 MiB
    with one arena against 1859-1964 MiB with glibc's default (8 per core). The threads take
    turns on the GIL for most of their work, so they seldom wait for the arena's lock: the
    steady round at N=10 was the same within noise (0.317-0.337 s against 0.321-0.334 s). Set
    before any thread exists: a thread keeps the arena it already has. Returns whether glibc
    took the setting (False on another C library).
    """
    try:
        return bool(pages.libc().mallopt(_M_ARENA_MAX, 1))
    except (OSError, AttributeError):
        return False


def _gpu_library(path: str) -> bool:
    """CUDA's libraries as the PyPI torch wheel ships them: the nvidia-* wheels, cuda-python's
    bindings and torch's own."""
    return (
        "/site-packages/nvidia/" in path
        or "/site-packages/cuda/" in path
        or Path(path).name.startswith(("libtorch_cuda", "libc10_cuda"))
    )


def _torch_cpu_library(path: str) -> bool:
    """torch's CPU libraries: importing torch reads ~50 MiB of them (operator registration, type
    tables) that a party never touches again; what a party runs it faults back in, shared."""
    return Path(path).name.startswith(("libtorch_cpu", "libtorch_python"))


def release_import_pages() -> int:
    """Page out what importing torch read of libraries that the parties use little or not at all.

    The PyPI torch wheel links CUDA; importing it maps cuBLASLt, NVRTC, nvJitLink and the rest and
    the dynamic loader reads 110-250 MiB of them (relocations, symbol tables), which the fork
    server then held for the whole run although no party calls into them (on a machine without
    an NVIDIA device; where there is one they stay). Of torch's CPU libraries the import read
    ~50 MiB that only the server held: the parties fault in the few pages they run, from the
    page cache or the file, and share them. Paging out takes ~30 ms; returns the bytes of the
    mappings advised (0 without /proc).
    """
    page_out_cuda = not has_nvidia_device()
    advised = 0
    for mapped in pages.mappings():
        if (
            _torch_cpu_library(mapped.path) or (page_out_cuda and _gpu_library(mapped.path))
        ) and pages.advise(mapped.low, mapped.high, pages.MADV_PAGEOUT):
            advised += mapped.size
    return advised


def _bss_spans(path: str, mapped_at: int) -> list[tuple[int, int]]:
    """The page-aligned spans of a loaded ELF64 library's .bss: the zero-filled tails of its
    loadable segments, which the dynamic loader maps anonymously. ``mapped_at``: where the
    file's first page is mapped."""
    with Path(path).open("rb") as elf:
        header = elf.read(64)
        if header[:4] != b"\x7fELF" or header[4:6] != b"\x02\x01":  # 64-bit, little-endian only
            return []
        (table_offset,) = struct.unpack_from("<Q", header, 32)
        entry_size, entries = struct.unpack_from("<HH", header, 54)
        elf.seek(table_offset)
        table = elf.read(entry_size * entries)
    loads = [
        struct.unpack_from("<IIQQQQQQ", table, i * entry_size)
        for i in range(entries)
        if struct.unpack_from("<I", table, i * entry_size)[0] == 1  # PT_LOAD
    ]
    if not loads:
        return []
    page = mmap.PAGESIZE
    base = mapped_at - loads[0][3] // page * page
    spans = []
    for _, _, _, vaddr, _, file_size, memory_size, _ in loads:
        start = -(-(base + vaddr + file_size) // page) * page
        end = -(-(base + vaddr + memory_size) // page) * page
        if end > start:
            spans.append((start, end))
    return spans


def discard_cublaslt_static_data() -> int:
    """Without an NVIDIA device, drop what cuBLASLt wrote into its .bss when it was loaded.

    Its static initialisers fill ~88 MiB of its .bss as torch is imported (torch links it); a fork
    server's children inherit those pages, so at N=29 they were ~90 MiB of the tree's summed PSS
    for a library that no process here can call (there is no device). Dropping them frees the
    memory; a page read again is zero. Only cuBLASLt's: its static objects, zeroed, survived
    torch's CPU work and a normal interpreter exit, where zeroing every CUDA library's .bss
    (3 MiB more) crashed that exit in their destructors. Returns the bytes discarded.
    """
    if has_nvidia_device():
        return 0
    maps = pages.mappings()
    discarded = 0
    for library in maps:
        if (
            library.offset
            or not Path(library.path).name.startswith("libcublasLt")
            or not _gpu_library(library.path)
        ):
            continue
        with contextlib.suppress(OSError, struct.error):
            for span in _bss_spans(library.path, library.low):
                for anon in maps:  # only anonymous pages inside the span
                    start, end = max(anon.low, span[0]), min(anon.high, span[1])
                    if not anon.path and start < end and pages.advise(start, end, pages.MADV_DONTNEED):
                        discarded += end - start
    return discarded


def has_nvidia_device() -> bool:
    """An NVIDIA driver's device nodes are present (checked without touching CUDA: fork-safe)."""
    with contextlib.suppress(OSError):
        return any(entry.name.startswith("nvidia") for entry in Path("/dev").iterdir())
    return False


def lower_priority() -> None:
    """Called in each party process: let the devnet and the live view go first (Unix only)."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(PARTY_NICENESS)


def exit_with(parent_pid: int) -> None:
    """Called first in a child: SIGKILL this process as soon as process ``parent_pid`` is gone.

    A party is forked by the fork server, not by simulate, and it holds the server's "alive"
    pipe, so neither notices simulate's death: a party waiting for peers, the fork server and
    the resource tracker used to run on until the round timeout. A daemon thread waits on a
    pidfd of simulate (Linux >= 5.3) and ends the party the moment simulate ends, however it
    ends (SIGTERM, SIGINT, SIGKILL); the server and the tracker then see their pipes close and
    exit by themselves. Without pidfds it polls every half second.
    """

    def kill_self() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    try:
        pidfd = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        kill_self()
        return
    except (AttributeError, OSError):
        pidfd = -1

    def watch() -> None:
        if pidfd >= 0:
            select.select([pidfd], [], [])
        else:
            while True:
                try:
                    os.kill(parent_pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(0.5)
        kill_self()

    threading.Thread(target=watch, name="hydrafed-exit-with-parent", daemon=True).start()
