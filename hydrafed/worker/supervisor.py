"""simulate's party processes: started from the fork server, watched, stopped; failures by name.

``Supervisor.start(name, "module:function", args)`` runs the function in a process forked from
the fork server (``processes.party_context``). The child first ties its life to this process
(``processes.exit_with``), lowers its priority, then imports the function and calls it; any
failure, an import error included, reaches the parent as a ``failed`` event naming the party
with the real exception and traceback. ``next_event`` relays the children's events and raises
``PartyFailed`` within about a second when a child reports a failure or dies without one (a
SIGKILL, the kernel's OOM killer). ``stop`` ends whoever is left. This module imports no torch.
"""

from __future__ import annotations

import importlib
import os
import queue as queue_mod
import signal
import time
import traceback
from collections.abc import Sequence
from typing import Any

from hydrafed import errors
from hydrafed.worker import processes
from hydrafed.worker.phases import State

REPORT_GRACE_SECONDS = 1.0
"""How long a dead child's last events may take to arrive through the queue."""


class PartyFailed(errors.HydrafedError):
    """A party process failed or died; the message names it and says how."""


def child_main(name: str, target: str, args: Sequence[Any], events: Any, parent_pid: int) -> None:
    """Entry point of every supervised child: tie to the parent, then run ``target(*args)``."""
    processes.exit_with(parent_pid)
    processes.lower_priority()
    try:
        module_name, _, function = target.partition(":")
        entry = getattr(importlib.import_module(module_name), function)
        entry(*args)
    except BaseException as exc:  # the parent must hear about every failure, then the process ends
        events.put(
            {
                "party": name,
                "state": State.FAILED,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
        raise SystemExit(1) from None


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class Supervisor:
    """The party processes of one simulate run, and the queue they report on."""

    def __init__(self) -> None:
        self.context = processes.party_context()
        self.events: Any = self.context.Queue()
        self.children: dict[str, Any] = {}
        self._reported: set[str] = set()
        self._pending: list[dict[str, Any]] = []

    def start(self, name: str, target: str, args: Sequence[Any]) -> None:
        """Fork ``name``'s process running ``target`` ("module:function") with ``args``."""
        process = self.context.Process(
            target=child_main,
            args=(name, target, tuple(args), self.events, os.getpid()),
            name=f"hydrafed-{name}",
            daemon=True,  # a parent that exits (even by Ctrl-C) terminates them instead of waiting
        )
        try:
            process.start()
        except Exception as exc:
            raise PartyFailed(f"{name}: its process could not start: {type(exc).__name__}: {exc}") from exc
        self.children[name] = process

    def finished(self, name: str) -> None:
        """``name`` has reported its result: its exit is no longer a failure."""
        self._reported.add(name)

    def next_event(self, timeout: float = 0.5) -> dict[str, Any] | None:
        """The next event, or None after ``timeout``; raises PartyFailed on a failure or a death."""
        if self._pending:
            return self._pending.pop(0)
        try:
            event: dict[str, Any] = self.events.get(timeout=timeout)
        except queue_mod.Empty:
            self._check_alive()
            return None
        if event.get("state") == State.FAILED:
            raise PartyFailed(f"party {event['party']} failed: {event['error']}")
        return event

    def _check_alive(self) -> None:
        dead = [
            (name, p)
            for name, p in self.children.items()
            if name not in self._reported and not p.is_alive() and p.exitcode is not None
        ]
        if not dead:
            return
        deadline = time.monotonic() + REPORT_GRACE_SECONDS
        while time.monotonic() < deadline:  # its own report may still be in the pipe
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue_mod.Empty:
                break
            if event.get("state") == State.FAILED:
                raise PartyFailed(f"party {event['party']} failed: {event['error']}")
            if event.get("state") == State.RESULT:
                self._reported.add(str(event["party"]))
            self._pending.append(event)
        dead = [(name, p) for name, p in dead if name not in self._reported]
        if not dead:
            return
        name, process = dead[0]
        raise PartyFailed(
            f"party {name}'s process (pid {process.pid}) {_how_it_ended(process.exitcode)} "
            "before it reported a result or an error"
        )

    def stop(self, *, grace: float = 10.0) -> None:
        """Wait up to ``grace`` seconds for the children to exit, then SIGTERM, then SIGKILL."""
        deadline = time.monotonic() + grace
        for process in self.children.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """End every child still running now (SIGTERM, SIGKILL after 2 s)."""
        alive = [p for p in self.children.values() if p.is_alive()]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + 2.0
        for process in alive:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(timeout=1.0)
