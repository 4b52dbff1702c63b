"""Every Python block of README.md and docs/*.md runs as written (or is marked as a
fragment), and every example script runs to completion."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"^(?:<!-- fragment(?P<why>:[^>]*)? -->(?P<mark>\n))?```(?P<lang>\w+)(?: (?P<name>\S+))?\n"
    r"(?P<text>.*?)^```$",
    flags=re.S | re.M,
)
PYTHON = ("python", "py")


@dataclass(frozen=True)
class Block:
    """A fenced block: where it is, its language, its file name if any, its text."""

    page: Path
    line: int
    lang: str
    name: str | None
    text: str
    fragment: str | None
    """Why the block is only a fragment (``<!-- fragment: why -->`` above it), if it is."""

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            page,
            text[: m.start("lang")].count("\n") + 1,
            m["lang"],
            m["name"],
            m["text"],
            None if m["mark"] is None else (m["why"] or ":").removeprefix(":").strip(),
        )
        for m in FENCE.finditer(text)
    ]


SNIPPETS = [b for page in PAGES for b in blocks_of(page) if b.lang in PYTHON and not b.name]


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory as a reader's: ``examples/`` reachable as from a checkout."""
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("block", SNIPPETS, ids=lambda block: block.id)
def test_every_python_block_of_the_docs_runs_or_is_marked_a_fragment(
    block: Block, page_folder: Path
) -> None:
    """Each block runs on its own, as a reader would paste it, beside the files the page
    shows under a name (```` ```yaml cn-2027.yaml ````; a named ``diff`` is a change to
    one, not a file)."""
    if block.fragment is not None:
        pytest.skip(f"{block.id} is marked as a fragment: {block.fragment or 'no reason given'}")
    for other in blocks_of(block.page):
        if other.name and other.lang != "diff":
            (page_folder / other.name).write_text(other.text, encoding="utf-8")
    before = set(sys.modules)
    try:
        exec(compile(block.text, block.id, "exec"), {"__name__": "docs"})
    finally:
        for name in set(sys.modules) - before:  # the page's own modules, made afresh next time
            if str(page_folder) in str(getattr(sys.modules[name], "__file__", "") or ""):
                del sys.modules[name]


def test_the_docs_have_python_blocks_and_few_fragments() -> None:
    assert {b.page.name for b in SNIPPETS} >= {"README.md", "storage.md", "testing.md"}
    fragments = [b.id for b in SNIPPETS if b.fragment is not None]
    assert len(fragments) <= len(SNIPPETS) // 3, fragments


def test_quickstart_example_closes_the_loop(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True, text=True, check=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    out = done.stdout
    assert "closed, handled by water-company" in out
    for trigger in (
        "report",
        "classify",
        "dispatch",
        "accept",
        "submit_result",
        "feedback",
        "confirm",
    ):
        assert re.search(rf"\d\. {trigger}\b", out), trigger
    assert "audit chain verified: True (7 events)" in out


@pytest.mark.parametrize(
    "script", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").rglob("*.py"))
)
def test_every_example_script_runs(script: str, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / script)],
        capture_output=True,
        check=True,
        cwd=tmp_path,
        timeout=120,
    )


ACTOR_ID = re.compile(r"""Actor\(\s*f?["']([^"']*)["']""")
PERSONAL = re.compile(r"\d{7,}|@|\{[^}]*phone[^}]*\}")


def test_examples_give_actors_opaque_ids_never_phone_numbers_or_emails() -> None:
    """Actor ids stay in the hash-chained trail for good: no example may teach putting
    a phone number or an email address there."""
    sources = [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "examples").rglob("*.py"),
    ]
    sources += (ROOT / "src" / "closedloop" / "simulation").rglob("*.py")
    found = {
        (path.relative_to(ROOT).as_posix(), actor_id)
        for path in sources
        for actor_id in ACTOR_ID.findall(path.read_text(encoding="utf-8"))
    }
    assert len(found) > 10, "the pattern no longer finds the examples' actors"
    assert sorted(item for item in found if PERSONAL.search(item[1])) == []


def test_the_security_page_names_only_tests_that_exist() -> None:
    page = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    files = set(re.findall(r"`(tests/[\w/]+\.py)", page))
    names = set(re.findall(r"`(?:tests/[\w/]+\.py::)?(test_\w+)`", page))
    assert files, "the page names no test file"
    assert names, "the page names no test"
    assert sorted(f for f in files if not (ROOT / f).is_file()) == []
    defined = {
        match
        for path in (ROOT / "tests").rglob("test_*.py")
        for match in re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M)
    }
    assert sorted(names - defined) == []
