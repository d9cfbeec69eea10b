#!/usr/bin/env python
"""Mutation testing of the security modules with mutmut 3, and a score per module.

    python tools/mutation.py                        # every module in [tool.mutmut] only_mutate
    python tools/mutation.py --modules keys tokens  # some of them
    python tools/mutation.py --survivors FILE       # also write each survivor as a diff line
    python tools/mutation.py --no-run --survivors FILE    # the last run again (mutants/)
    tox -e mutation                                 # the first line, in its own virtualenv

The modules are those listed in ``only_mutate`` under ``[tool.mutmut]`` in pyproject.toml,
which also chooses the tests (docs/testing.md says how and why). The run uses SQLite and the
local-memory cache (``COCART_JWT_TEST_SERVICES=none``) and starts from an empty ``mutants/``,
so the score never carries a verdict from an older test suite.

It prints one line per module, then, as its last line::

    mutation score: K killed of N (P%)

A mutant counts as killed when a test failed or when its tests ran out of time (mutmut's
"timeout": a mutant that hangs; a module's line says how many). Every other mutant counts
against the score: survived, no test reached it, or an odd end ("suspicious", "segfault").
P has one decimal, rounded down, so a score never reads higher than it is. The exit status
is 0 when the run finished, 1 when mutmut failed or left mutants unchecked, 2 when the run
hit ``--timeout``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "mutants"
LOG = WORK_DIR / "mutmut-run.log"

# mutmut's exit codes, by what they mean for the score (mutmut.stats.status_by_exit_code).
KILLED = "killed"
TIMEOUT = "timeout"
NOT_CHECKED = "not checked"
COUNTED_AS_KILLED = {KILLED, TIMEOUT}

# A whole run took 27 minutes here (docs/testing.md); twice the 30-minute budget is a stuck run.
DEFAULT_TIMEOUT_SECONDS = 60 * 60


@dataclass
class Mutant:
    name: str
    status: str


@dataclass
class ModuleResult:
    path: str
    mutants: list[Mutant] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return sum(m.status in COUNTED_AS_KILLED for m in self.mutants)

    @property
    def total(self) -> int:
        return len(self.mutants)

    def counts(self) -> Counter[str]:
        return Counter(m.status for m in self.mutants)


def percent(killed: int, total: int) -> str:
    """One decimal, rounded down: 899 of 1000 is 89.9, never 90.0."""
    if not total:
        return "0.0"
    tenths = killed * 1000 // total
    return f"{tenths // 10}.{tenths % 10}"


def mutmut_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return config["tool"]["mutmut"]


def configured_modules() -> list[str]:
    modules = mutmut_config()["only_mutate"]
    if not modules or not all(isinstance(m, str) and m.endswith(".py") for m in modules):
        raise SystemExit("pyproject.toml: [tool.mutmut] only_mutate must list .py files")
    return list(modules)


def check_selection() -> None:
    """pyproject's test files and the plugin's concepts name the same files and modules."""
    from mutation_selection import CONCEPT_TESTS, NOT_SELECTED, concept_files

    selected = {
        Path(arg).name
        for arg in mutmut_config()["pytest_add_cli_args_test_selection"]
        if not arg.startswith("-")
    }
    named = concept_files()
    modules = {module_name(path) for path in configured_modules()}
    problems = [
        *(f"{name} is in no module's CONCEPT_TESTS" for name in sorted(selected - named)),
        *(f"{name} is not in the test selection" for name in sorted(named - selected)),
        *(f"{name}.py has no CONCEPT_TESTS entry" for name in sorted(modules - set(CONCEPT_TESTS))),
        *(
            f"tests/{name} does not exist"
            for name in sorted(selected)
            if not (ROOT / "tests" / name).exists()
        ),
        *(
            f"{name} is both selected and in NOT_SELECTED"
            for name in sorted(selected & set(NOT_SELECTED))
        ),
        *(
            f"{name} is neither selected nor in NOT_SELECTED"
            for name in sorted(path.name for path in (ROOT / "tests").glob("test_*.py"))
            if name not in selected and name not in NOT_SELECTED
        ),
    ]
    if problems:
        raise SystemExit(
            "pyproject.toml [tool.mutmut] and tools/mutation_selection.py disagree: "
            + "; ".join(problems)
        )


def dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def module_name(path: str) -> str:
    """``store.live`` for ``cocart_jwt/store/live.py``: the name CONCEPT_TESTS and --modules use."""
    return dotted(path).partition(".")[2]


def pick_modules(names: list[str] | None) -> list[str]:
    modules = configured_modules()
    if not names:
        return modules
    chosen = [m for m in modules if module_name(m) in names or m in names]
    unknown = set(names) - {module_name(m) for m in chosen} - set(chosen)
    if unknown:
        raise SystemExit(
            f"not in [tool.mutmut] only_mutate: {', '.join(sorted(unknown))} "
            f"(choose from: {', '.join(module_name(m) for m in modules)})"
        )
    return chosen


def mutmut_executable() -> str:
    # `mutmut run`, not `python -m mutmut`: mutmut warns that -m re-executes its module.
    beside = Path(sys.executable).parent / "mutmut"
    found = str(beside) if beside.exists() else shutil.which("mutmut")
    if not found:
        raise SystemExit("mutmut is not installed: pip install -e '.[dev]'")
    return found


def run_environment() -> dict[str, str]:
    """SQLite and local memory: no service URL, and not CI (where a missing service fails)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["COCART_JWT_TEST_SERVICES"] = "none"
    env["CI"] = ""
    env.pop("MUTANT_UNDER_TEST", None)
    return env


def run_mutmut(globs: list[str], max_children: int, timeout: float) -> int:
    """Run mutmut in its own process group, its chatter to LOG; 2 when it hit ``timeout``."""
    command = [mutmut_executable(), "run", "--max-children", str(max_children), *globs]
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - our own tool and arguments
            command,
            cwd=ROOT,
            env=run_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # mutmut and the workers it forked share the group we started.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            return 2


def read_results(modules: list[str]) -> list[ModuleResult]:
    from mutmut.stats import status_by_exit_code

    results = []
    for path in modules:
        meta = WORK_DIR / f"{path}.meta"
        result = ModuleResult(path)
        if meta.exists():
            codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
            result.mutants = [
                Mutant(name, status_by_exit_code[code]) for name, code in codes.items()
            ]
        results.append(result)
    return results


def module_line(result: ModuleResult) -> str:
    """``path: K killed of N (P%), T of them by timeout; S survived, ...``"""
    counts = result.counts()
    line = (
        f"{result.path}: {result.killed} killed of {result.total} "
        f"({percent(result.killed, result.total)}%)"
    )
    if counts[TIMEOUT]:
        line += f", {counts[TIMEOUT]} of them by timeout"
    others = ", ".join(
        f"{counts[status]} {status}" for status in sorted(counts) if status not in COUNTED_AS_KILLED
    )
    return f"{line}; {others}" if others else line


def report_failure() -> None:
    """The end of mutmut's log without its spinner, and how to see a failing test."""
    text = LOG.read_text("utf-8", errors="replace").replace("\r", "\n")
    lines = [line for line in text.splitlines() if line.strip() and not SPINNER.match(line)]
    print(f"mutmut failed; the end of {LOG.relative_to(ROOT)}:", file=sys.stderr)
    print("\n".join(lines[-40:]), file=sys.stderr)
    selection = " ".join(mutmut_config()["pytest_add_cli_args_test_selection"])
    print(
        "mutmut stops when a test fails without any mutant, and its stats run prints no\n"
        "pytest output; to see which test, run:\n"
        f"  COCART_JWT_TEST_SERVICES=none python -m pytest -x {selection}",
        file=sys.stderr,
    )


SPINNER = re.compile(r"^[\u2800-\u28ff] ")


# --- survivors: module, function, line and the change ----------------------------------------


def function_of(name: str) -> tuple[str | None, str]:
    """(class, function) of a mutant name such as ``pkg.mod.xǁKlassǁmethod__mutmut_3``."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, klass = orig_function_and_class_names_from_key(name)
    return klass, function


def def_lines(source: str) -> dict[tuple[str | None, str], int]:
    """The ``def`` line of every top-level function and method, as mutmut finds them."""
    found: dict[tuple[str | None, str], int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[(None, node.name)] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[(node.name, item.name)] = item.lineno
    return found


HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")


def changed_lines(diff: str) -> tuple[int | None, list[str]]:
    """The 1-based line, within the diffed function text, of the first change; its -/+ lines."""
    first: int | None = None
    changes: list[str] = []
    orig = 0
    for line in diff.splitlines():
        hunk = HUNK.match(line)
        if hunk:
            orig = int(hunk.group(1))
            continue
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            first = orig if first is None else first
            changes.append(line)
            orig += 1
        elif line.startswith("+"):
            first = orig if first is None else first
            changes.append(line)
        else:
            orig += 1
    return first, changes


def original_text(name: str, path: str) -> str:
    """The function as mutmut diffs it: its source, from the comments above its ``def``."""
    import libcst as cst
    from mutmut.mutation.diff_apply import (
        read_functions_from_index,
        read_mutants_module,
        read_original_function,
    )

    functions = read_functions_from_index(name, path)
    if functions is None:
        original = read_original_function(read_mutants_module(path), name)
    else:
        original = functions[0]
    return cst.Module([original]).code.strip()


def source_line(name: str, path: str, first: int | None, source: str) -> int | None:
    """The line in ``path`` of the 1-based line ``first`` of the function's diffed text."""
    klass, function = function_of(name)
    def_line = def_lines(source).get((klass, function))
    if def_line is None or first is None:
        return None
    text = original_text(name, path).splitlines()
    starts = ("def ", "async def ")
    def_index = next((i for i, t in enumerate(text, 1) if t.lstrip().startswith(starts)), None)
    if def_index is None:
        return None
    return def_line + first - def_index


def describe_survivor(mutant: Mutant, path: str, source: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    klass, function = function_of(mutant.name)
    qualified = f"{klass}.{function}" if klass else function
    diff = get_diff_for_mutant(mutant.name, path=path)
    first, changes = changed_lines(diff)
    line = source_line(mutant.name, path, first, source)
    where = f"line {line}" if line is not None else "line ?"
    body = "\n".join(f"    {change}" for change in changes or diff.splitlines())
    return (
        f"- `{module_name(path)}` `{qualified}` {where}, {mutant.status} "
        f"(`{mutant.name.rpartition('.')[2]}`):\n\n    ```diff\n{body}\n    ```\n"
    )


def write_survivors(results: list[ModuleResult], target: Path, header: str) -> int:
    """Every mutant not counted as killed, grouped by module; returns how many."""
    sections = [
        header,
        "| module | killed | of | score | not killed |",
        "|---|---:|---:|---:|---:|",
    ]
    sections += [
        f"| {r.path} | {r.killed} | {r.total} | {percent(r.killed, r.total)}% "
        f"| {r.total - r.killed} |"
        for r in results
    ]
    count = 0
    for result in results:
        left = [m for m in result.mutants if m.status not in COUNTED_AS_KILLED]
        sections.append(
            f"\n## {result.path}: {result.killed} killed of {result.total} "
            f"({percent(result.killed, result.total)}%), {len(left)} left\n"
        )
        source = (ROOT / result.path).read_text("utf-8")
        for mutant in sorted(left, key=lambda m: natural_key(m.name)):
            sections.append(describe_survivor(mutant, result.path, source))
        count += len(left)
    target.write_text("\n".join(sections), "utf-8")
    return count


def natural_key(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


# --- the run -------------------------------------------------------------------------------


def git(*args: str) -> str:
    """A read-only git query; empty when git cannot answer."""
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def git_commit() -> str:
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "cocart_jwt", "tests")
    return f"{commit} with uncommitted changes to cocart_jwt/ or tests/" if dirty else commit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--modules",
        nargs="+",
        metavar="NAME",
        help="only these modules of [tool.mutmut] only_mutate (keys, tokens, store.live, ...)",
    )
    parser.add_argument(
        "--survivors",
        type=Path,
        metavar="FILE",
        help="write every mutant not killed (module, function, line, diff) to FILE",
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="run nothing: report the last run's results, left in mutants/",
    )
    parser.add_argument(
        "--max-children",
        type=int,
        default=os.cpu_count() or 2,
        help="mutants tested at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="stop the whole run after this long (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    modules = pick_modules(args.modules)
    if args.no_run:
        status, took = 0, "the last run"
    else:
        check_selection()
        # A fresh start: mutmut keeps the verdict of an unchanged function even when the
        # tests changed, which would score an old suite.
        shutil.rmtree(WORK_DIR, ignore_errors=True)
        globs = [f"{dotted(path)}.*" for path in modules]
        print(f"mutmut: {len(modules)} module(s), log in {LOG.relative_to(ROOT)}", flush=True)
        started = time.monotonic()
        status = run_mutmut(globs, args.max_children, args.timeout)
        minutes = (time.monotonic() - started) / 60
        took = f"{minutes:.1f} min"
        print(f"mutmut: exit status {status} after {took}", flush=True)
        if status == 2:
            print(f"mutmut: stopped after --timeout {args.timeout:.0f} s", file=sys.stderr)
        elif status != 0:
            report_failure()
            return 1

    results = read_results(modules)
    unchecked = sum(result.counts()[NOT_CHECKED] for result in results)
    if args.survivors:
        header = (
            "# Mutants not killed\n\n"
            f"mutmut run by tools/mutation.py on commit {git_commit()}, "
            f"COCART_JWT_TEST_SERVICES=none, {took}.\n"
            "Each: module, function, line on that commit, status, mutant name "
            "(`mutmut show cocart_jwt.<module>.<name>` shows it whole), and the change.\n"
        )
        count = write_survivors(results, args.survivors, header)
        print(f"mutmut: {count} mutant(s) not killed, listed in {args.survivors}", flush=True)
    for result in results:
        print(module_line(result))
    killed = sum(result.killed for result in results)
    total = sum(result.total for result in results)
    print(f"mutation score: {killed} killed of {total} ({percent(killed, total)}%)", flush=True)
    if status == 2 or unchecked:
        return 2 if status == 2 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
