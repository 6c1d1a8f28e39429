"""``docs/method.md`` exists, and every citation of it in the repository resolves.

Code and notebooks cite the methods document by section: ``docs/method.md §3.3``,
``docs/method.md §3, §9``, ``docs/method.md §3.2-3.3``, or a parenthesis that follows the name
(``docs/method.md`` then ``(§3 for the metrics, §1 for ...)``).  These tests scan the repository's
text files (tracked, plus untracked files git does not ignore) and check that

- every cited section number is a heading of ``docs/method.md`` (a heading whose text starts with
  the number: ``## 9. ...`` or ``### 3.3 ...``);
- every mention spells the path ``docs/method.md`` (only ``docs/method.md`` itself and the README
  may say ``method.md`` alone);
- every ``§`` cross-reference inside ``docs/method.md`` resolves too.

How a citation is read (:func:`citations`): after each mention of the file name, the text up to
the end of the clause (an unbalanced closing bracket, a full stop followed by white space, a blank
line, the end of a notebook source line, or the name of another ``.md`` file; at most
``WINDOW`` characters) is searched for ``§N``, ``§N.M`` and ranges ``§N-M`` / ``§N.M-N.K``.
A ``§`` that does not follow a mention of the file (e.g. ``§3.3`` alone) is not checked.

This file is left out of the scan: it holds fabricated bad citations on purpose.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
METHOD = "docs/method.md"
#: file types scanned for citations
SUFFIXES = (".py", ".ipynb", ".md", ".yaml", ".yml", ".toml", ".sh", ".cff")
#: files allowed to say ``method.md`` without the ``docs/`` path
BARE_ALLOWED = frozenset({METHOD, "README.md"})
#: files not scanned (this one cites bad sections on purpose)
NOT_SCANNED = frozenset({"tests/test_docs.py"})
#: the numbering that code docstrings and notebooks cite; each must stay a heading
REQUIRED_SECTIONS = (
    "1", "1.1", "2", "3", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "4", "5", "6", "7", "8", "9",
)  # fmt: skip
#: how far after a mention of the file name its section list may reach
WINDOW = 240

_MENTION = re.compile(r"(?<![\w-])method\.md\b")
_PROPER = re.compile(r"(?<![\w./-])(?:\./)?docs/method\.md\b")
_SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)(?:\s*[-–]\s*§?\s*(\d+(?:\.\d+)*))?")
_HEADING = re.compile(r"^#{1,6}[ \t]+(\d+(?:\.\d+)*)\.?(?:\s|$)", re.MULTILINE)
#: where the clause after a mention ends (brackets are handled separately)
_CLAUSE_END = re.compile(
    r"\.(?=\s|$)"  # a full stop followed by white space
    r"|\n[ \t]*\n"  # a blank line
    r'|\\n"'  # the end of a notebook (JSON) source line
    r"|[\w./-]+\.md\b"  # another markdown file's name
)


@dataclass(frozen=True)
class Citation:
    """One cited section: where it is and how it was written."""

    path: str
    line: int
    section: str  # "3.3"
    written: str  # as in the file: "§3.2-3.3"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: cites §{self.section} (written {self.written!r})"


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def headings(markdown: str) -> set[str]:
    """Section numbers of the numbered headings: ``## 9. Named`` -> ``"9"``, ``### 3.3 VR`` -> ``"3.3"``."""
    return {m.group(1) for m in _HEADING.finditer(markdown)}


def expand_range(start: str, end: str | None) -> list[str]:
    """The sections a (possibly ranged) citation names.

    ``3.2-3.4`` -> 3.2, 3.3, 3.4; ``3-5`` -> 3, 4, 5; ``3.2-3`` is read as ``3.2-3.3``; endpoints of
    different parents (``2.2-3.1``) are checked as endpoints only.
    """
    if end is None:
        return [start]
    a = [int(x) for x in start.split(".")]
    b = [int(x) for x in end.split(".")]
    if len(b) < len(a):
        b = a[: len(a) - len(b)] + b
    if len(a) == len(b) and a[:-1] == b[:-1] and a[-1] <= b[-1]:
        prefix = ".".join(str(x) for x in a[:-1])
        return [f"{prefix}.{k}" if prefix else str(k) for k in range(a[-1], b[-1] + 1)]
    return [start, ".".join(str(x) for x in b)]


def _clause(text: str, start: int) -> str:
    """The text after ``start`` up to the end of the clause (see the module docstring)."""
    tail = text[start : start + WINDOW]
    depth = 0
    for i, ch in enumerate(tail):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                tail = tail[:i]
                break
    end = _CLAUSE_END.search(tail)
    return tail[: end.start()] if end else tail


def citations(text: str, path: str = "<string>") -> list[Citation]:
    """Every section cited after a mention of the methods document in ``text``."""
    out = []
    for mention in _MENTION.finditer(text):
        start = mention.end()
        for m in _SECTION.finditer(_clause(text, start)):
            line = _line_of(text, start + m.start())
            for section in expand_range(m.group(1), m.group(2)):
                out.append(Citation(path, line, section, m.group(0)))
    return out


def bare_mentions(text: str, path: str = "<string>") -> list[str]:
    """``path:line`` of each mention of ``method.md`` not spelled ``docs/method.md``."""
    proper = {m.end() for m in _PROPER.finditer(text)}
    return [
        f"{path}:{_line_of(text, m.start())}: {_snippet(text, m.start())}"
        for m in _MENTION.finditer(text)
        if m.end() not in proper
    ]


def _snippet(text: str, pos: int) -> str:
    lo = text.rfind("\n", 0, pos) + 1
    hi = text.find("\n", pos)
    return text[lo : hi if hi >= 0 else len(text)].strip()[:120]


def unresolved(cites: list[Citation], known: set[str]) -> list[str]:
    """Failure lines for the citations whose section is not a heading of the document."""
    return [f"{c}, but {METHOD} has no heading numbered {c.section}" for c in cites if c.section not in known]


def repo_files(root: Path) -> list[str]:
    """Tracked files plus untracked, non-ignored ones, with a scanned suffix, that exist."""
    names: set[str] = set()
    for extra in ([], ["--others", "--exclude-standard"]):
        try:
            res = subprocess.run(
                ["git", "-C", str(root), "ls-files", "-z", *extra],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot list the repository's files with git: {exc}")
        names.update(n for n in res.stdout.split("\0") if n)
    return sorted(n for n in names if n.endswith(SUFFIXES) and n not in NOT_SCANNED and (root / n).is_file())


def check_repository(root: Path, files: list[str]) -> tuple[list[str], list[str]]:
    """``(unresolved citations, bare mentions)`` of ``files`` against ``root/docs/method.md``."""
    known = headings((root / METHOD).read_text(encoding="utf-8"))
    bad, bare = [], []
    for name in files:
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        bad += unresolved(citations(text, name), known)
        if name not in BARE_ALLOWED:
            bare += bare_mentions(text, name)
    return bad, bare


# --------------------------------------------------------------------------------------------
# The repository
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scanned() -> tuple[list[str], list[str]]:
    assert (REPO_ROOT / METHOD).is_file(), f"{METHOD} is missing"
    return check_repository(REPO_ROOT, repo_files(REPO_ROOT))


def test_method_md_exists():
    assert (REPO_ROOT / METHOD).is_file(), f"{METHOD} is missing: code docstrings cite it by section"


def test_method_md_has_the_cited_numbering():
    known = headings((REPO_ROOT / METHOD).read_text(encoding="utf-8"))
    missing = [s for s in REQUIRED_SECTIONS if s not in known]
    assert not missing, f"{METHOD} lacks headings numbered {missing}"


def test_every_citation_resolves(scanned):
    bad, _ = scanned
    assert not bad, f"{len(bad)} citation(s) of {METHOD} do not resolve:\n" + "\n".join(bad)


def test_every_mention_spells_the_path(scanned):
    _, bare = scanned
    assert not bare, (
        f"{len(bare)} mention(s) of method.md without the docs/ path (write {METHOD}):\n" + "\n".join(bare)
    )


def test_cross_references_inside_method_md_resolve():
    text = (REPO_ROOT / METHOD).read_text(encoding="utf-8")
    known = headings(text)
    bad = [
        f"{METHOD}:{_line_of(text, m.start())}: §{s} (written {m.group(0)!r})"
        for m in _SECTION.finditer(text)
        for s in expand_range(m.group(1), m.group(2))
        if s not in known
    ]
    assert not bad, "cross-references to missing sections:\n" + "\n".join(bad)


# --------------------------------------------------------------------------------------------
# The checker itself, on strings
# --------------------------------------------------------------------------------------------

DOC = """# Method
## 1. Data
### 1.1 What is known
## 3. Metrics
### 3.2 Recognition: CRA
### 3.3 Realization: VR and VI
### 3.4 Transformation
## 9. Named modes and config keys
#### not numbered
"""


def _sections(text: str) -> list[str]:
    return [c.section for c in citations(text)]


def test_headings():
    assert headings(DOC) == {"1", "1.1", "3", "3.2", "3.3", "3.4", "9"}
    assert headings("##3 no space\n#no\n1. list item\n    ## 4 indented\n") == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see docs/method.md §3.3 for the grid", ["3.3"]),
        ('"""Decision thresholds (docs/method.md §3, §9)."""', ["3", "9"]),
        ("(docs/method.md §3 and §1.1)", ["3", "1.1"]),
        ("What it reproduces (docs/method.md §3.2-3.3), deliberately (§7)", ["3.2", "3.3"]),
        ("docs/method.md §3.2–3.4", ["3.2", "3.3", "3.4"]),
        ("docs/method.md §3-5", ["3", "4", "5"]),
        ("docs/method.md §3.2-3", ["3.2", "3.3"]),
        ("docs/method.md §3.2-§3.3", ["3.2", "3.3"]),
        ("docs/method.md §9. Then §4 of something else", ["9"]),
        (
            "in ``docs/method.md``\n(§3 for the metrics, §1 for dedup, §9 for modes).\nLater §5.",
            ["3", "1", "9"],
        ),
        ("# docs/method.md\n#: §3.2 on the next comment line", ["3.2"]),
        ('"cultural references (docs/method.md §1): *static* ones (paintings §8)', ["1"]),
        ('"see docs/method.md\\n",\n    "§6 of the notes"', []),
        ("docs/method.md and offline-recipes.md §5", []),
        ("docs/method.md\n\n§4 in a new paragraph", []),
        ("docs/method.md, then §4 far away " + "x" * WINDOW, ["4"]),
        ("docs/method.md, then " + "x" * WINDOW + " §4", []),
        ("a §3.3 that follows no mention", []),
        ("my_method.md §3", []),
    ],
)
def test_citation_forms(text, expected):
    assert _sections(text) == expected


def test_citation_lines():
    text = "line one\nsee docs/method.md §3.3\nand ``docs/method.md``\n(§9)"
    assert [(c.line, c.section) for c in citations(text, "x.py")] == [(2, "3.3"), (4, "9")]


def test_fabricated_bad_citation_fails():
    text = '"""Front door.\n\nSee docs/method.md §3.2 and docs/method.md §42.1, §3.9-3.10.\n"""\n'
    problems = unresolved(citations(text, "pkg/mod.py"), headings(DOC))
    assert problems == [
        f"pkg/mod.py:3: cites §42.1 (written '§42.1'), but {METHOD} has no heading numbered 42.1",
        f"pkg/mod.py:3: cites §3.9 (written '§3.9-3.10'), but {METHOD} has no heading numbered 3.9",
        f"pkg/mod.py:3: cites §3.10 (written '§3.9-3.10'), but {METHOD} has no heading numbered 3.10",
    ]
    assert unresolved(citations("docs/method.md §3.2-3.4, §9", "ok.py"), headings(DOC)) == []


def test_bare_mentions():
    text = (
        "ok: docs/method.md §3\n"
        "ok: ``./docs/method.md``\n"
        "bare: (method.md §1.1): images\n"
        "foreign: /work/shared/docs/method.md\n"
        "not a mention: my_method.md, method.mdx\n"
    )
    assert bare_mentions(text, "m.py") == [
        "m.py:3: bare: (method.md §1.1): images",
        "m.py:4: foreign: /work/shared/docs/method.md",
    ]


def test_check_repository_on_a_fabricated_tree(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / METHOD).write_text(DOC, encoding="utf-8")
    (tmp_path / "good.py").write_text('"""See docs/method.md §3.3."""\n', encoding="utf-8")
    (tmp_path / "bad.py").write_text('"""See method.md §3.7."""\n', encoding="utf-8")
    (tmp_path / "README.md").write_text("The methods: method.md §9.\n", encoding="utf-8")
    bad, bare = check_repository(tmp_path, ["README.md", "bad.py", "good.py", METHOD])
    assert bad == [f"bad.py:1: cites §3.7 (written '§3.7'), but {METHOD} has no heading numbered 3.7"]
    assert bare == ['bad.py:1: """See method.md §3.7."""']
