"""Every file the docs and pyproject.toml's comments name is in the repository.

A newcomer follows them literally: a path in a command or a link that is not there is the
first thing that goes wrong. Checked: Markdown links, paths in inline code and in fenced code
blocks of README.md, example_project/README.md and docs/*.md, and paths in the comments of
pyproject.toml. A word counts as a path of this repository when it starts with one of its
source folders (``docs/``, ``tests/``...) or with ``./``, or, in a link or a pyproject comment,
when it is a file name (``CHANGELOG.md``). Placeholders (``<id>``, ``*``, ``$VAR``) and what
the commands create (``.venv/``, ``dist/``...) are not paths to check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = {".ci", "bench", "cocart_jwt", "docs", "example_project", "tests", "tools"}
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "example_project" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FILE_NAME = re.compile(r"^[\w.-]+\.(?:md|py|toml|ini|cfg|txt|html)$")
PLACEHOLDER = re.compile(r"[<>*{}$\[\]?=%|\\]|\.\.\.")
OPENING = "\"'`("  # around a word in prose; a leading "." stays (./runtests, .ci/)
CLOSING = "\"'`),;.:!"
TEMPLATES = ROOT / "cocart_jwt" / "templates"
# Made by a run, not in a fresh clone (.gitignore): the browser tests' screenshots.
MADE_BY_COMMANDS = ("tests/artifacts",)


def repo_path(word: str, *, file_names: bool = False) -> str | None:
    """The repository path ``word`` names, or None when it names none."""
    word = word.lstrip(OPENING).rstrip(CLOSING).split("::", 1)[0]  # x.py::test_y: the file
    word = re.sub(r":\d+$", "", word)  # cocart_jwt/views.py:120: the file
    if not word or PLACEHOLDER.search(word) or "://" in word:
        return None
    if word.startswith("./"):
        return word[2:] or None
    if word.startswith(MADE_BY_COMMANDS):
        return None
    head, slash, _ = word.partition("/")
    if slash:
        return word if head in SOURCE_DIRS else None
    return word if file_names and FILE_NAME.match(word) else None


def exists(path: Path) -> bool:
    """The file is there; an ``.html`` name may be a template name (``cocart_jwt/base.html``)."""
    if path.exists():
        return True
    if path.suffix != ".html" or not path.is_relative_to(ROOT):
        return False
    return (TEMPLATES / path.relative_to(ROOT)).exists()


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def named_in_markdown(document: Path) -> Iterator[tuple[int, Path]]:
    """(line, path) of each repository path named in a Markdown document."""
    text = document.read_text()
    for match in LINK.finditer(text):
        target = match.group(1).split("#", 1)[0]
        if target and not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # not http:, mailto:...
            yield line_of(text, match.start()), (document.parent / target)
    blocks = [(m.start(1), m.group(1)) for m in FENCED.finditer(text)]
    outside = FENCED.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    spans = [(m.start(1), m.group(1)) for m in INLINE.finditer(outside)]
    for start, code in blocks + spans:
        for word in re.finditer(r"\S+", code):
            path = repo_path(word.group(0))
            if path is not None:
                yield line_of(text, start + word.start()), ROOT / path


def named_in_pyproject() -> Iterator[tuple[int, Path]]:
    """(line, path) of each repository path named in a comment of pyproject.toml."""
    for number, line in enumerate((ROOT / "pyproject.toml").read_text().splitlines(), 1):
        comment = re.search(r"(?:^|\s)#\s?(.*)$", line)
        if comment is None:
            continue
        for word in comment.group(1).split():
            path = repo_path(word, file_names=True)
            if path is not None:
                yield number, ROOT / path


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_document_names_exists(document: Path) -> None:
    missing = [
        f"{document.relative_to(ROOT)}:{line}: {path.resolve().relative_to(ROOT)}"
        for line, path in named_in_markdown(document)
        if not exists(path)
    ]

    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def test_every_path_a_pyproject_comment_names_exists() -> None:
    named = list(named_in_pyproject())
    missing = [
        f"pyproject.toml:{line}: {path.relative_to(ROOT)}"
        for line, path in named
        if not exists(path)
    ]

    assert named, "the checker finds no path in pyproject.toml's comments"
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("word", "path"),
    [
        ("example_project/client.py", "example_project/client.py"),
        ("`./runtests`", "runtests"),
        ("tests/test_store.py::test_me", "tests/test_store.py"),
        ("(docs/keys.md).", "docs/keys.md"),
        (".venv/bin/python", None),  # made by ./runtests
        ("dist/django_cocart_jwt-*.whl", None),  # made by python -m build
        ("tests/artifacts/", None),  # made by the browser tests
        ("sessions/<id>/", None),
        ("api/auth/", None),  # a URL, not a folder of the repository
        ("cocart_jwt.urls", None),
        ("https://example.com/docs/x.md", None),
    ],
)
def test_what_counts_as_a_path(word: str, path: str | None) -> None:
    assert repo_path(word) == path


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    document = tmp_path / "page.md"
    document.write_text(
        "Run `tests/no_such_test.py`, see [the guide](docs/no-such-page.md).\n"
        "```sh\n.venv/bin/python example_project/no_such_client.py\n```\n"
    )

    named = {str(path) for _, path in named_in_markdown(document)}

    assert named == {
        str(ROOT / "tests/no_such_test.py"),
        str(tmp_path / "docs/no-such-page.md"),
        str(ROOT / "example_project/no_such_client.py"),
    }
    assert repo_path("CONTRACT.md", file_names=True) == "CONTRACT.md"
    assert not (ROOT / "CONTRACT.md").exists()


# This repository's own scripts run with the interpreter ./runtests and ./run-example set up;
# a bare `python` is the system's, without Django. (README.md's quick start and docs/ speak of
# the reader's own site and its manage.py.)
SCRIPTS = r"(?<![\w/.-])python3? (?:example_project/|bench/"


@pytest.mark.parametrize(
    ("document", "bare_python"),
    [
        (ROOT / "README.md", re.compile(SCRIPTS + ")")),
        (ROOT / "example_project" / "README.md", re.compile(SCRIPTS + r"|manage\.py)")),
    ],
    ids=["README.md", "example_project/README.md"],
)
def test_commands_of_this_repository_use_the_venv_interpreter(
    document: Path, bare_python: re.Pattern[str]
) -> None:
    text = document.read_text()
    bare = [f"line {line_of(text, m.start())}" for m in bare_python.finditer(text)]

    assert ".venv/bin/python example_project/client.py" in text
    assert not bare, f"`python ...` fails outside the venv: use .venv/bin/python ({bare})"
