"""Hierarchical codes, for areas (district > street > community > grid) and categories.

The scheme: a code is one or more segments joined by dots, each segment made of ASCII
letters, digits, ``_``, ``-`` or ``:`` (``D1.S1.C2.G07``, ``01.02``, ``wechat:mp``). It
is the one grammar of codes: areas, units and categories here, and the ``code`` fields
of workflow payloads (:mod:`closedloop.engine.inputs`). A code's ancestors are
its prefixes of whole segments, so ``D1.S1.C2.G07`` lies in ``D1.S1.C2``, ``D1.S1`` and
``D1``, and ``01`` covers ``01.02``. A code covers itself and its descendants. Its
depth (number of segments) is its specificity: ``D1.S1`` is more specific than ``D1``.

The codes carry their whole path, so matching is by prefix and never needs the tree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator

MAX_CODE_LENGTH = 128
"""The longest code accepted, in characters."""

# Matched with fullmatch: "$" would also match before a final line break.
_CODE = re.compile(r"[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*")
CODE_RULE = (
    "dot-separated segments of ASCII letters A-Z a-z, digits 0-9, '_', '-' or ':' "
    "(no other characters: no spaces, no Chinese or other non-ASCII letters)"
)
"""The grammar of a code, in words, for error messages."""


@lru_cache(maxsize=4096)
def _well_formed(value: str) -> bool:
    return len(value) <= MAX_CODE_LENGTH and bool(_CODE.fullmatch(value))


def is_code(value: object) -> bool:
    """Whether ``value`` is a well-formed hierarchical code.

    >>> is_code("D1.S1.C2.G07"), is_code("01..02"), is_code("01/02"), is_code("01\\n")
    (True, False, False, False)
    """
    return isinstance(value, str) and _well_formed(value)


def code_problem(value: object) -> str | None:
    """Why ``value`` is not a well-formed code, or ``None`` when it is one."""
    if is_code(value):
        return None
    if isinstance(value, str) and len(value) > MAX_CODE_LENGTH:
        return f"code is longer than {MAX_CODE_LENGTH} characters"
    if isinstance(value, str) and value != value.strip():
        return f"code {value!r} begins or ends with whitespace or a line break"
    return f"malformed code {value!r}: use {CODE_RULE}, such as 'D1.S1.C2.G07' or '01.02'"


def _checked(value: str) -> str:
    problem = code_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Code = Annotated[str, AfterValidator(_checked)]
"""A well-formed hierarchical code, as a pydantic field type."""


def depth(code: str) -> int:
    """The number of segments of ``code``: its specificity.

    >>> depth("D1"), depth("D1.S1.C2.G07")
    (1, 4)
    """
    return code.count(".") + 1


def parent(code: str) -> str | None:
    """The nearest ancestor of ``code``, or ``None`` for a root.

    >>> parent("D1.S1.C2"), parent("D1")
    ('D1.S1', None)
    """
    head, dot, _ = code.rpartition(".")
    return head if dot else None


def ancestors(code: str, *, include_self: bool = False) -> tuple[str, ...]:
    """The ancestors of ``code``, root first; with ``include_self`` it ends with ``code``.

    >>> ancestors("D1.S1.C2.G07")
    ('D1', 'D1.S1', 'D1.S1.C2')
    >>> ancestors("01.02", include_self=True)
    ('01', '01.02')
    """
    chain = lineage(code)
    ordered = chain[::-1]
    return ordered if include_self else ordered[:-1]


@lru_cache(maxsize=8192)
def lineage(code: str) -> tuple[str, ...]:
    """``code`` followed by its ancestors, most specific first (the order routing tries).

    >>> lineage("D1.S1.C2")
    ('D1.S1.C2', 'D1.S1', 'D1')
    """
    parts = code.split(".")
    return tuple(".".join(parts[:n]) for n in range(len(parts), 0, -1))


def covers(scope: str, code: str) -> bool:
    """Whether ``scope`` is ``code`` or one of its ancestors.

    >>> covers("D1.S1", "D1.S1.C2.G07"), covers("D1.S1", "D1.S10"), covers("01", "01")
    (True, False, True)
    """
    return code == scope or code.startswith(scope + ".")


CLOSEST = 3
"""How many of the nearest valid codes an :class:`~closedloop.errors.UnknownCode` names."""


def closest(code: str, known: Iterable[str], limit: int = CLOSEST) -> list[str]:
    """The codes of ``known`` nearest ``code``: those sharing the most leading segments
    first (siblings before strangers), then the most similar text, then in code order."""
    segments = code.split(".")

    def shared(other: str) -> int:
        count = 0
        for mine, theirs in zip(segments, other.split("."), strict=False):
            if mine != theirs:
                break
            count += 1
        return count

    scored = []
    for other in known:
        ratio = difflib.SequenceMatcher(None, code, other).ratio()
        depth = shared(other)
        if depth or ratio >= 0.5:
            scored.append((-depth, -ratio, other))
    return [other for _, _, other in sorted(scored)[:limit]]
