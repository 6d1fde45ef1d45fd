"""The docs name only things that exist: repository paths, modules, ``hydrafed`` commands.

Docs drift when code moves. This reads README.md and every ``docs/**/*.md`` (whatever pages
exist), collects what they name in code spans, links and fenced blocks, and checks it against
the checkout and the typer app, so a rename that forgets the docs fails here, naming the page,
the line and the missing thing.

What counts as a repository path (anything else in backticks is prose, an API route, a URL...):

- a span whose first component is a top-level entry git tracks (``hydrafed/spec.py``,
  ``tests/cluster/``, ``docs/x.md``, ``Makefile``) must exist from the repository root, or be a
  path git ignores (a build output such as ``tests/cluster/bin/``);
- a relative ``x/y.py``-style span (``devnet/server.py`` in docs/hydra.md's module table) must be
  the tail of some file in the repository; a bare ``name.py`` or ``name.md`` the name of one;
- in plain prose, a ``root/.../name.ext`` or ``root/.../`` word (README's list of docs/x.md) must
  exist like a code span does (other slashes in prose, "hydrafed/Flower", are words);
- a relative link target must exist next to the page;
- a dotted span rooted in one of our packages (``hydrafed.rounds.RoundBook``, ``python -m
  bench.paper``) must be a module, and its first attribute must be defined there.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

#: Commands being added while a doc already names them (``("party", "export")``); a doc may name
#: them before they land. Empty: operator, worker and party export (issue 12) have all landed and
#: are checked like any other command.
BEING_BUILT: frozenset[tuple[str, ...]] = frozenset()

_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PATHLIKE = re.compile(r"^[\w.*-]+(?:/[\w.*-]+)*/?$")
#: Extensions of files a relative (not root-anchored) span is taken to name.
_SOURCE_EXT = (".py", ".md", ".sh", ".go", ".mk")
#: ``hydrafed`` in command position: line/span start, after a shell operator, or after a prefix.
_COMMAND = re.compile(
    r"(?:^|&&|\|\||[;|]|\$\(|\bexec|\buv run|\.venv/bin/|python -m)\s*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"
    r"hydrafed((?:[ \t]+[a-z][\w-]*){0,2})"
)
_MODULE = re.compile(r"python3? -m ([\w.]+)")


@functools.cache
def _files() -> frozenset[str]:
    """Every file and directory under the repository (relative, POSIX), hidden and venvs left out."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and d not in {"node_modules", "__pycache__"}
        ]
        rel = Path(dirpath).relative_to(REPO)
        for name in [*dirnames, *filenames]:
            found.add((rel / name).as_posix())
    return frozenset(found)


@functools.cache
def _roots() -> frozenset[str]:
    """Top-level names git tracks (the filesystem's when git is not available)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = [p for p in _files() if "/" not in p]
    return frozenset(p.split("/", 1)[0] for p in listed)


def _doc_pages() -> list[Path]:
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [p for p in pages if p.is_file()]


def _lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, inside a fenced code block) for each line of a page."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        yield number, line, fenced


def _ignored(target: str) -> bool:
    """Whether git ignores the path: a build output (``tests/cluster/bin/``) a fresh clone lacks."""
    try:
        # With and without the slash: a "dir/" pattern matches only the former when dir is absent.
        done = subprocess.run(
            ["git", "check-ignore", target, target + "/"], cwd=REPO, capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _exists(path: str, base: str = "") -> bool:
    target = (Path(base) / path).as_posix().rstrip("/") if base else path.rstrip("/")
    target = os.path.normpath(target)
    if "*" in target:
        return any(REPO.glob(target))
    return target in _files() or (REPO / target).exists() or _ignored(target)


def _path_problem(token: str, page_dir: str) -> str | None:
    """Why ``token`` names a repository path that does not exist, or None."""
    token = re.sub(r"(:\d+|::\w+|#[\w-]+)$", "", token.strip())
    if not token or not _PATHLIKE.match(token) or token.startswith(("../", "./")):
        return None
    head = token.split("/", 1)[0]
    if head in _roots():
        return None if _exists(token) else f"`{token}` does not exist in the repository"
    if not token.endswith(_SOURCE_EXT):
        return None
    if "/" in token:
        tail = "/" + token
        if any(f.endswith(tail) for f in _files()) or _exists(token, page_dir):
            return None
        return f"`{token}` is not the tail of any path in the repository"
    if any(f == token or f.endswith("/" + token) for f in _files()):
        return None
    return f"`{token}`: no file of that name in the repository"


def _prose_paths(line: str) -> Iterator[str]:
    """Root-anchored paths written without backticks: ``docs/x.md``, ``crds/``, not ``hydrafed/Flower``."""
    prose = re.sub(r"\]\([^)]*\)", "]", re.sub(r"`[^`]*`", "", line))
    roots = sorted(r for r in _roots() if not r.startswith(".") and (REPO / r).is_dir())
    if not roots:
        return
    pattern = r"(?<![\w./-])(?:" + "|".join(map(re.escape, roots)) + r")/[\w.*/-]*"
    for match in re.finditer(pattern, prose):
        token = match.group(0).rstrip(".,:;")
        if token.endswith("/") or re.search(r"\.\w+$", token.rsplit("/", 1)[-1]):
            yield token


def _link_problem(target: str, page_dir: str) -> str | None:
    if re.match(r"^[a-z][\w+.-]*:", target) or target.startswith(("#", "/")):
        return None  # a URL, a mail address, an anchor on the same page
    path = target.split("#", 1)[0]
    if not path or (path.startswith("../") and not page_dir):
        return None  # outside the repository (the shared reference next to the checkout)
    return None if _exists(path, page_dir) else f"link target `{target}` does not exist next to the page"


def _subcommands(command: object) -> dict[str, object] | None:
    """A group's sub-commands by name (None for a plain command); typer vendors click, so duck-typed."""
    commands = getattr(command, "commands", None)
    return commands if isinstance(commands, dict) else None


@functools.cache
def _cli() -> dict[str, object]:
    """The top-level commands of ``hydrafed``, from the typer app itself."""
    from hydrafed import cli  # the CLI module only: heavy imports live inside the commands

    commands = _subcommands(typer.main.get_command(cli.app))
    assert commands is not None, "hydrafed's typer app has no sub-commands"
    return commands


def _command_problem(words: list[str]) -> str | None:
    """Why ``hydrafed <words>`` is not a command of the typer app, or None."""
    if not words:
        return None
    top = _cli()
    if words[0] not in top:
        if (words[0],) in BEING_BUILT:
            return None
        return f"`hydrafed {words[0]}` is not a command (have: {', '.join(sorted(top))})"
    sub = _subcommands(top[words[0]])
    if sub is not None and len(words) > 1 and words[1] not in sub:
        if tuple(words[:2]) in BEING_BUILT:
            return None
        return f"`hydrafed {words[0]} {words[1]}` is not a command (have: {', '.join(sorted(sub))})"
    return None


def _module_problem(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in _roots():
        return None  # a third-party module (pytest, pip) or the standard library
    base = "/".join(parts)
    if any(_exists(c) for c in (f"{base}.py", f"{base}/__init__.py", f"{base}/__main__.py")):
        return None
    return f"`python -m {module}`: no module {base}.py or package {base}/"


_DOTTED = re.compile(r"^[a-z_][\w]*(?:\.\w+)+$")


def _defines(source: Path, name: str) -> bool:
    """Whether a module's source defines or imports ``name`` at some level (a cheap, static look)."""
    text = source.read_text(encoding="utf-8") if source.is_file() else ""
    pattern = (
        rf"(?m)^\s*(?:async\s+def|def|class)\s+{name}\b|^\s*{name}\s*[:=]"
        rf"|^\s*(?:from\s+\S+\s+)?import\s+[^#\n]*\b{name}\b"
    )
    return re.search(pattern, text) is not None


def _dotted_problem(token: str) -> str | None:
    """Why a dotted ``package.module[.attr]`` span names nothing in the repository, or None."""
    parts = token.split(".")
    if (
        not _DOTTED.match(token)
        or parts[0] not in _roots()
        or not (REPO / parts[0] / "__init__.py").is_file()
    ):
        return None  # prose (``report.json``, ``hydrafed.io``) or a third-party name
    here = REPO / parts[0]
    for depth, part in enumerate(parts[1:], start=1):
        if (here / part / "__init__.py").is_file():
            here = here / part
            continue
        if (here / f"{part}.py").is_file():
            module = here / f"{part}.py"
            rest = parts[depth + 1 :]
            if rest and not _defines(module, rest[0]):
                return f"`{token}`: {module.relative_to(REPO).as_posix()} defines no {rest[0]}"
            return None
        if _defines(here / "__init__.py", part):
            return None  # a name the package exports
        return f"`{token}`: no module or package {'/'.join(parts[: depth + 1])}"
    return None


def _problems(rel: str, text: str) -> list[str]:
    """Every stale name on the page at repository path ``rel`` whose content is ``text``."""
    page_dir = Path(rel).parent.as_posix()
    page_dir = "" if page_dir == "." else page_dir
    found: list[str] = []
    for number, line, fenced in _lines(text):
        snippets = [line] if fenced else [m.group(1) for m in _SPAN.finditer(line)]
        for snippet in snippets:
            for cmd in _COMMAND.finditer(snippet):
                problem = _command_problem(cmd.group(1).split())
                if problem:
                    found.append(f"{rel}:{number}: {problem}")
            for mod in _MODULE.finditer(snippet):
                problem = _module_problem(mod.group(1))
                if problem:
                    found.append(f"{rel}:{number}: {problem}")
            if not fenced:
                problem = _path_problem(snippet, page_dir) or _dotted_problem(snippet.strip())
                if problem:
                    found.append(f"{rel}:{number}: {problem}")
        if not fenced:
            for token in _prose_paths(line):
                if not _exists(token):
                    found.append(f"{rel}:{number}: {token} does not exist in the repository")
            for link in _LINK.finditer(line):
                problem = _link_problem(link.group(1), page_dir)
                if problem:
                    found.append(f"{rel}:{number}: {problem}")
    return found


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_docs_name_only_what_exists(page: Path) -> None:
    problems = _problems(page.relative_to(REPO).as_posix(), page.read_text(encoding="utf-8"))
    assert not problems, "stale names in the docs:\n" + "\n".join(problems)


# -- The checker itself: it must catch what it is for (a checker that passes everything is useless).


PROBE = "docs/probe.md"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("See `hydrafed/no_such_module.py`.", "`hydrafed/no_such_module.py` does not exist"),
        ("Cases in `tests/nowhere/`.", "`tests/nowhere/` does not exist"),
        ("The table: `devnet/head.py`.", "`devnet/head.py` is not the tail"),
        ("Run `hydrafed rewind`.", "`hydrafed rewind` is not a command"),
        ("Run `hydrafed keys rotate`.", "`hydrafed keys rotate` is not a command"),
        ("```\n$ .venv/bin/hydrafed frobnicate --x\n```", "`hydrafed frobnicate` is not a command"),
        ("Rerun: `python -m bench.no_such_bench`.", "no module bench/no_such_bench.py"),
        ("The driver, `hydrafed.no_such_driver`, opens it.", "no module or package hydrafed/no_such_driver"),
        ("See `hydrafed.spec.NoSuchSpec`.", "hydrafed/spec.py defines no NoSuchSpec"),
        ("![plot](img/no_such_plot.png)", "link target `img/no_such_plot.png` does not exist"),
        ("- docs/no_such_page.md: a page that was never written.", "docs/no_such_page.md does not exist"),
    ],
)
def test_checker_reports_the_page_line_and_name(text: str, expected: str) -> None:
    problems = _problems(PROBE, "# Probe\n\n" + text + "\n")
    assert len(problems) == 1, problems
    line = 4 if text.startswith("```") else 3
    assert problems[0].startswith(f"{PROBE}:{line}: ")
    assert expected in problems[0]


def test_checker_accepts_what_exists_and_ignores_prose() -> None:
    text = """# Probe

`hydrafed/spec.py`, `tests/unit/`, `docs/hydra.md`, `Makefile`, `devnet/server.py`, `ledger.py`,
[hydra](hydra.md#devnet), `hydrafed simulate --parties 3`, `hydrafed keys generate`, `hydrafed --help`,
`python -m bench.paper`, `python -m pytest`; prose: `POST /commit`, `apps/v1`, `report.json`,
`3/3`, `hydrafed.io/v1`, `helm install hydrafed charts`, `hydrafed/worker/{a,b}.py`, `os.path`,
`hydrafed.spec.FederationSpec`, `hydrafed.hydra.devnet.Devnet`, `hydrafed.worker.party.PHASES`, `report.json`,
[site](https://example.org/x.md), `hydrafed operator`, `hydrafed party export`,
`hydrafed worker`.
Prose: see docs/hydra.md and tests/unit/, a ratio hydrafed/Flower of 0.4, scripts/datums/minting.

```
hydrafed simulate --rounds 2 && hydrafed crds --check
```
"""
    assert _problems(PROBE, text) == []
