"""Reading YAML, and the directory, category and responsibility-list files.

Every YAML file closedloop reads (workflows, responsibility lists, directories,
catalogues, holiday tables) goes through :func:`parse_yaml`: one safe-load policy, so a
file can build no Python object, nest no deeper than :data:`MAX_YAML_DEPTH`, and repeat
no key.

Loaders report every problem of a file at once, so each item is validated on its own
and pydantic's errors are turned into one line per problem, prefixed with where the
item sits (``units[3]``, ``row 7``). Codes such as ``01.02`` must be quoted in YAML,
where ``01.02`` unquoted is the number 1.02; the message says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_QUOTE_HINT = " (quote codes and versions in YAML, e.g. '01.02', or YAML reads a number)"


MAX_YAML_DEPTH = 64
"""The deepest nesting of lists and mappings a YAML file may have."""


class BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses documents nested deeper than :data:`MAX_YAML_DEPTH`.

    PyYAML builds nested nodes by recursion: a few thousand ``[`` would otherwise end in
    a ``RecursionError`` instead of a problem report naming the file and line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Compose one node, refusing it when it lies too deep."""
        if self._depth >= MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _StrictLoader(BoundedLoader):
    """A bounded safe loader that refuses duplicate mapping keys instead of keeping the last."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,
)


class _TextDatesLoader(_StrictLoader):
    """The strict loader, leaving dates as text so a bad date is reported with its path."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _StrictLoader.yaml_implicit_resolvers.items()
}


class NotYAML(ValueError):
    """The text is not a YAML document closedloop accepts; the message says why.

    Raised by :func:`parse_yaml` alone, so that no other module needs PyYAML to tell a
    parse failure apart; each reader turns it into its own typed error.
    """


def parse_yaml(text: str, *, dates_as_text: bool = False, source: str | None = None) -> Any:
    """The YAML document in ``text``, refusing duplicate keys and deep nesting.

    Args:
        text: The document.
        dates_as_text: Leave ``2027-01-01`` as the string it is written as, for
            readers that check dates themselves and report a bad one by its path.
        source: Where the text comes from (a file's name), for the messages.

    Raises:
        NotYAML: not YAML, nested too deep, or a mapping repeats a key; the message
            says where: ``source``, line and column.
    """
    # A SafeLoader: no arbitrary objects are constructed. A list or mapping used as a
    # key, or nesting too deep to build, is not a document we accept.
    kind = _TextDatesLoader if dates_as_text else _StrictLoader
    try:
        loader = kind(text)  # refuses a character YAML does not allow, at once
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        raise NotYAML(_unacceptable(text, exc, source)) from None
    except yaml.YAMLError as exc:
        raise NotYAML(_where(exc, source)) from None
    except (TypeError, RecursionError) as exc:
        raise NotYAML(f"unusable YAML structure: {exc}") from None


def _unacceptable(text: str, exc: yaml.reader.ReaderError, source: str | None) -> str:
    """One line: where ``text`` holds a character YAML does not allow, and which."""
    at = exc.position
    line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    code = ord(exc.character) if isinstance(exc.character, str) else exc.character
    named = f"{source}, " if source else ""
    return f"{named}line {line}, column {column}: unacceptable character #x{code:04x}: {exc.reason}"


def _where(exc: yaml.YAMLError, source: str | None) -> str:
    """One line: where the parser stopped (``source``, line, column) and why."""
    named = f"{source}, " if source else ""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}: {exc}" if source else str(exc)
    mark = exc.problem_mark
    said = f"{named}line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context:
        begun = exc.context_mark
        since = f" from line {begun.line + 1}" if begun is not None else ""
        said += f" ({exc.context}{since})"
    return said


def read_yaml(path: str | Path) -> tuple[Any, list[str]]:
    """The document in ``path`` and, if it cannot be read or parsed, the reason as a
    problem (each loader raises its own typed error with it)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: undecodable, or a NUL in the path
        return None, [f"<file>: cannot read: {exc}"]
    try:
        return parse_yaml(text, source=str(path)), []
    except NotYAML as exc:
        return None, [f"not valid YAML: {exc}"]


def mapping_problems(
    data: object, *, required: Iterable[str], optional: Iterable[str]
) -> list[str]:
    """Problems of the top-level mapping of a document: its type and its keys."""
    if not isinstance(data, Mapping):
        return [f"the document must be a mapping, got {type(data).__name__}"]
    known = set(required) | set(optional)
    problems = [f"missing top-level key {key!r}" for key in required if key not in data]
    problems += [
        f"unknown top-level key {key!r}; known: {', '.join(sorted(known))}"
        for key in data
        if key not in known
    ]
    return problems


def section(data: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    """The list under ``key`` (empty when absent); a non-list is a problem."""
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        problems.append(f"{key}: must be a list, got {type(value).__name__}")
        return []
    return list(value)


def validate_items(
    model: type[ModelT],
    items: Iterable[tuple[str, object]],
    problems: list[str],
) -> list[tuple[str, ModelT]]:
    """Each ``(where, raw)`` item validated as ``model``; failures go to ``problems``."""
    valid: list[tuple[str, ModelT]] = []
    for where, raw in items:
        try:
            valid.append((where, model.model_validate(raw)))
        except PydanticValidationError as exc:
            problems.extend(describe(exc, where))
    return valid


def validate_one(
    model: type[ModelT], raw: object, where: str, problems: list[str]
) -> ModelT | None:
    """``raw`` validated as ``model``, or ``None`` with its problems recorded."""
    valid = validate_items(model, [(where, raw)], problems)
    return valid[0][1] if valid else None


def describe(exc: PydanticValidationError, where: str) -> list[str]:
    """One line per error of ``exc``, each prefixed with ``where`` and the field path."""
    lines = []
    for error in exc.errors(include_url=False):
        path = _path(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_type" and isinstance(error["input"], int | float):
            message += _QUOTE_HINT
        if error["type"] == "model_type":
            message = f"must be a mapping, got {type(error['input']).__name__}"
        field = f"{path}: " if path else ""
        lines.append(f"{where}: {field}{message}")
    return lines


def _path(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def labelled(
    items: Sequence[object], key: str, label: Callable[[int, object], str] | None = None
) -> list[tuple[str, object]]:
    """``items`` of section ``key`` paired with where they sit: ``key[i]`` (and the id)."""
    return [((label or _default_label(key))(index, raw), raw) for index, raw in enumerate(items)]


def _default_label(key: str) -> Callable[[int, object], str]:
    def label(index: int, raw: object) -> str:
        ident = raw.get("id") if isinstance(raw, Mapping) else None
        return f"{key}[{index}] ({ident})" if isinstance(ident, str) else f"{key}[{index}]"

    return label
