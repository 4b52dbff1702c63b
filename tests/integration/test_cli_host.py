"""Host code on the command line: ``--registry`` and ``--notifier`` name the host's own
guards, effects and channels as ``module:attribute``, imported from the current
directory; host code that cannot be used is a one-line error, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.cli_runs import assert_one_line_error, run_all

ROOT = Path(__file__).resolve().parents[2]
POTHOLES = ROOT / "examples" / "potholes"

HOST_MODULE = """
from closedloop import Registry

from potholes import REGISTRY

NOT_A_REGISTRY = {"photo_on_file": None}


def make_registry():
    return REGISTRY


def broken_factory():
    raise RuntimeError("the guard table is not configured")


def gives_a_string():
    return "REGISTRY"


class PrintChannel:
    def send(self, notification):
        print(notification.id)


class AsyncChannel:
    async def send(self, notification):
        print(notification.id)
"""


def host_folder(tmp_path: Path) -> Path:
    """The pothole example copied where commands run, with a module of host objects."""
    folder = tmp_path / "host"
    shutil.copytree(POTHOLES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "hostcode.py").write_text(HOST_MODULE, encoding="utf-8")
    (folder / "broken.py").write_text("import nowhere_to_be_found\n", encoding="utf-8")
    (folder / "raising.py").write_text("raise ValueError('no config file')\n", encoding="utf-8")
    return folder


def test_validate_and_diagram_read_a_workflow_with_the_hosts_guard(tmp_path: Path) -> None:
    folder = host_folder(tmp_path)
    plain, registered, made, drawn, undrawn, unlisted = run_all(
        folder,
        ("validate", "potholes.yaml"),
        ("validate", "potholes.yaml", "--registry", "potholes:REGISTRY"),
        ("validate", "potholes.yaml", "--registry", "hostcode:make_registry"),
        ("diagram", "potholes.yaml", "--registry", "potholes:REGISTRY"),
        ("diagram", "potholes.yaml"),
        ("cases", "--db", "cases.db", "--workflow", "potholes.yaml"),
    )
    assert_one_line_error(plain, "unknown guard 'photo_on_file'")
    assert "(guards and effects of your own: --registry MODULE:ATTR)" in plain.stdout
    for ran in (undrawn, unlisted):  # every command that loads a workflow names the option
        assert_one_line_error(
            ran, "unknown guard 'photo_on_file'", "(guards and effects of your own: --registry"
        )
    for ran in (registered, made):
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == (
            "potholes.yaml: workflow 'potholes' version 1 is valid: 5 states (2 final), "
            "5 transitions, 3 clocks.\nConflicts of interest: no not_party rule; a member "
            "of a case's lead unit or co-unit may fire every transition their roles allow.\n"
        )
    assert drawn.returncode == 0, drawn.stderr
    assert "    inspecting --> fixed: approve\n" in drawn.stdout


def test_host_code_that_cannot_be_used_is_a_one_line_error(tmp_path: Path) -> None:
    folder = host_folder(tmp_path)
    checks = {
        "nosuchmodule:REGISTRY": "no module named 'nosuchmodule'",
        "potholes:NOPE": "'potholes' has no attribute 'NOPE'",
        "hostcode:NOT_A_REGISTRY": "usable as a Registry of guards and effects: it is a dict",
        "hostcode:broken_factory": "calling it failed: RuntimeError: the guard table is not",
        "hostcode:gives_a_string": "calling it gave a str",
        "broken:REGISTRY": "importing 'broken' failed: ModuleNotFoundError: No module named "
        "'nowhere_to_be_found'",
        "raising:REGISTRY": "importing 'raising' failed: ValueError: no config file",
        "potholes": "write it as module:attribute",
    }
    ran = run_all(folder, *(("validate", "potholes.yaml", "--registry", spec) for spec in checks))
    for (spec, fragment), result in zip(checks.items(), ran, strict=True):
        assert_one_line_error(result, repr(spec), fragment)


def test_commands_that_open_a_database_take_the_registry_too(tmp_path: Path) -> None:
    folder = host_folder(tmp_path)
    shown, listed, worked = run_all(
        folder,
        ("case", "show", "case-1", "--db", "none.db", "--registry", "potholes:NOPE"),
        ("cases", "--db", "none.db", "--registry", "potholes:NOPE"),
        ("worker", "none.db", "--registry", "potholes:NOPE"),
    )
    for ran in (shown, listed, worked):
        assert_one_line_error(ran, "'potholes' has no attribute 'NOPE'")


def test_notifier_options_that_cannot_be_used_are_one_line_errors(tmp_path: Path) -> None:
    folder = host_folder(tmp_path)
    (folder / "cases.db").touch()
    no_send, twice, empty_channel, both = run_all(
        folder,
        ("worker", "cases.db", "--notifier", "potholes:REGISTRY"),
        ("worker", "cases.db", "--notifier", "notify=potholes:load", "--notifier",
         "notify=potholes:load"),
        ("worker", "cases.db", "--notifier", "=potholes:REGISTRY"),
        ("worker", "cases.db", "--notifier", "hostcode:PrintChannel", "--webhook",
         "https://hooks.example/x"),
    )  # fmt: skip
    assert_one_line_error(no_send, "is not usable as a notifier", "it is a Registry")
    assert_one_line_error(twice, "channel 'notify' is given a notifier twice")
    assert_one_line_error(empty_channel, "the channel before '=' is empty")
    assert_one_line_error(both, "--webhook and a --notifier without a channel both serve")


def test_a_notifier_for_a_channel_the_workflow_lacks_or_an_async_one_is_refused(
    tmp_path: Path,
) -> None:
    folder = host_folder(tmp_path)
    (folder / "cases.db").touch()
    typo, async_send, no_colon = run_all(
        folder,
        ("worker", "cases.db", "--notifier", "notfy=hostcode:PrintChannel"),
        ("worker", "cases.db", "--notifier", "notify=hostcode:AsyncChannel"),
        ("worker", "cases.db", "--notifier", "hostcode"),
    )
    assert_one_line_error(
        typo,
        "--notifier notfy=hostcode:PrintChannel: workflow 'standard' has no channel 'notfy'",
        "its channels: notify",
    )
    assert_one_line_error(
        async_send,
        "is not usable as a notifier",
        "calling it gave an AsyncChannel whose send is async def",
    )
    assert_one_line_error(no_colon, "write it as module:attribute, e.g. channels:SMSChannel")
