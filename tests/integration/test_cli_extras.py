"""Commands run without an optional package they need: one line naming its extra."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from closedloop.adapters.sqlalchemy import SQLStore
from tests.integration.cli_runs import Ran, assert_one_line_error, run_all


def test_each_optional_package_a_command_needs_is_named_with_its_extra(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    SQLStore(f"sqlite:///{db}").close()
    runs: list[tuple[list[str], tuple[str, ...]]] = [
        (["uvicorn"], ("serve", "--db", str(db), "--port", "0")),
        (["psycopg"], ("cases", "--db", "postgresql://nobody@127.0.0.1:9/closedloop")),
    ]

    def run(blocked: list[str], args: tuple[str, ...]) -> Ran:
        return run_all(tmp_path, args, without=blocked)[0]

    with ThreadPoolExecutor(len(runs)) as pool:  # side by side
        uvicorn, psycopg = pool.map(lambda r: run(*r), runs)
    assert_one_line_error(uvicorn, "closedloop serve needs the package 'uvicorn'", "[server]'")
    assert_one_line_error(psycopg, "'postgresql+psycopg'", "closedloop[postgres]'")
