"""Party processes: forked from a preloaded, frozen fork server, scheduled below the parent."""

from __future__ import annotations

import gc
import multiprocessing.queues
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hydrafed.storage import S3_PRELOAD_ENDPOINT_ENV
from hydrafed.worker import processes

pytestmark = pytest.mark.unit


def test_a_party_process_yields_to_the_parent() -> None:
    # In a fresh interpreter, so that this test process keeps its own priority.
    code = (
        "import os; from hydrafed.worker.processes import lower_priority; "
        "before = os.nice(0); lower_priority(); print(os.nice(0) - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == processes.PARTY_NICENESS


def _report_preloaded(results: multiprocessing.queues.Queue[tuple[list[str], int, bool]]) -> None:
    preloaded = [m for m in processes.preloaded_modules() if m in sys.modules]
    results.put((preloaded, gc.get_freeze_count(), "boto3" in sys.modules))


@pytest.mark.integration
def test_parties_fork_from_a_server_that_preloaded_and_froze_the_heavy_modules() -> None:
    # Prepare
    context = processes.party_context()
    if context.get_start_method() != "forkserver":
        pytest.skip("no fork server on this platform")
    results = context.Queue()
    child = context.Process(target=_report_preloaded, args=(results,))

    # Execute
    child.start()
    preloaded, frozen, has_boto3 = results.get(timeout=120)
    child.join(timeout=30)

    # Assert: torch and the worker came with the fork, the heap they built is frozen, and boto3
    # only where an S3 endpoint was named for the parties
    assert preloaded == list(processes.preloaded_modules())
    assert has_boto3 == (processes.S3_CLIENTS in preloaded)
    assert frozen > 100_000
    assert child.exitcode == 0


def test_the_s3_clients_are_preloaded_only_for_parties_on_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(S3_PRELOAD_ENDPOINT_ENV, raising=False)
    assert processes.S3_CLIENTS not in processes.preloaded_modules()

    monkeypatch.setenv(S3_PRELOAD_ENDPOINT_ENV, "http://127.0.0.1:8333")

    assert processes.preloaded_modules() == (*processes.HEAVY, processes.S3_CLIENTS)


_IMPORT_PAGES = """
import torch
from hydrafed.worker import processes

def paged_mappings() -> tuple[int, int]:
    size = pss = 0
    counted = False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if not line[0].isupper():
            counted = len(fields) == 6 and (
                processes._gpu_library(fields[5]) or processes._torch_cpu_library(fields[5])
            )
            if counted:
                low, high = (int(address, 16) for address in fields[0].split("-"))
                size += high - low
        elif line.startswith("Pss:") and counted:
            pss += int(fields[1])
    return size, pss

size, before = paged_mappings()
advised = processes.release_import_pages()
_, after = paged_mappings()
still_computes = float((torch.ones(64, 784) @ torch.ones(784, 10)).sum())
print(size, advised, before, after, still_computes)
"""


@pytest.mark.skipif(processes.has_nvidia_device(), reason="a GPU machine keeps CUDA's pages")
def test_the_fork_server_advises_the_kernel_to_page_out_every_cuda_and_torch_library_mapping() -> None:
    command = [sys.executable, "-c", _IMPORT_PAGES]
    size, advised, before, after, computed = subprocess.run(
        command, capture_output=True, text=True, check=True
    ).stdout.split()

    assert int(size) > 1 << 30  # bytes: the CUDA torch wheel maps over a GiB of CUDA's libraries
    assert int(advised) == int(size)  # every mapping of them and of torch's CPU libraries, none refused
    # How much the kernel then reclaims is its call (it skips pages another process maps, or
    # that are not yet on its LRU lists): measured in docs/storage.md, not asserted here.
    assert int(after) <= int(before)
    assert float(computed) == 64 * 784 * 10  # torch on the CPU works as before


def test_torch_cpu_libraries_are_selected_for_page_out_and_python_is_not() -> None:
    lib = Path(torch.__file__).parent / "lib"

    assert processes._torch_cpu_library(str(lib / "libtorch_cpu.so"))
    assert processes._torch_cpu_library(str(lib / "libtorch_python.so"))
    assert not processes._torch_cpu_library(str(lib / "libc10.so"))  # the parties run on it
    assert not processes._torch_cpu_library("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0")


_CUBLASLT_BSS = """
import torch
from hydrafed.worker import processes

def rss_kib() -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/smaps_rollup") if line.startswith("Rss:"))

before = rss_kib()
discarded = processes.discard_cublaslt_static_data()
after = rss_kib()
model = torch.nn.Linear(784, 10)
loss = model(torch.ones(64, 784)).square().mean()
loss.backward()
print(discarded, before - after, torch.cuda.is_available(), bool(torch.isfinite(model.weight.grad).all()))
"""


@pytest.mark.skipif(processes.has_nvidia_device(), reason="a GPU machine keeps cuBLASLt's state")
def test_cublaslt_static_data_is_freed_and_torch_still_trains_and_exits_cleanly() -> None:
    done = subprocess.run([sys.executable, "-c", _CUBLASLT_BSS], capture_output=True, text=True, check=True)
    discarded, freed_kib, cuda, finite = done.stdout.split()

    assert int(discarded) > 64 << 20  # bytes: cuBLASLt's .bss in the CUDA wheel is ~90 MiB
    assert int(freed_kib) > 64 << 10  # freed at once: the pages were this process's alone
    assert (cuda, finite) == ("False", "True")  # torch on the CPU trains; its exit (check=True) is clean


_ARENAS_AFTER_A_THREAD_ALLOCATES = """
import ctypes, sys, threading
from hydrafed.worker import processes
took = processes.one_malloc_arena() if sys.argv[1] == "one" else None
thread = threading.Thread(target=lambda: [bytearray(4096) for _ in range(100)])
thread.start()
thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
print(took)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_stats")
@pytest.mark.parametrize(("setting", "arenas", "took"), [("one", 1, "True"), ("default", 2, "None")])
def test_with_one_malloc_arena_a_thread_allocates_from_the_main_one(
    setting: str, arenas: int, took: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _ARENAS_AFTER_A_THREAD_ALLOCATES, setting],
        capture_output=True,
        text=True,
        check=True,
    )

    assert out.stderr.count("Arena ") == arenas
    assert out.stdout.strip() == took
