"""The catalogue of report categories: hierarchical codes with names and precedence.

Loaded from YAML (:meth:`CategoryCatalog.from_yaml`) or a mapping::

    categories:
      - {code: "01", name: 公用设施, name_en: Public facilities, precedence: owner_first}
      - {code: "01.01", name: 上水井盖, name_en: Water-supply manhole cover}

Codes follow :mod:`closedloop.engine.hierarchy` (``01`` covers ``01.01``) and must be
quoted in YAML. ``precedence`` says, for the category and everything under it, whether
a registered owner's entry or the territory's entry wins when both match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from closedloop.engine.hierarchy import Code, lineage, parent
from closedloop.engine.loading import (
    labelled,
    mapping_problems,
    read_yaml,
    section,
    validate_items,
)
from closedloop.errors import InvalidResponsibilityList, UnknownName

Precedence = Literal["owner_first", "territory_first"]
"""Which entry wins when both a registered owner's and the territory's entry match."""


class Category(BaseModel):
    """One category of report, such as ``01.01`` water-supply manhole cover."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    name: str = Field(min_length=1)
    name_en: str | None = None
    precedence: Precedence | None = None


class CategoryCatalog:
    """The known categories; a closed tree (every ancestor of a code is listed).

    Args:
        categories: The categories, parents before or after children.
        source: Where they came from, named in errors.

    Raises:
        InvalidResponsibilityList: duplicate codes, or a code whose parent is missing.
    """

    def __init__(self, categories: Iterable[Category], *, source: str | None = None) -> None:
        items = list(categories)
        problems = list(_check(items))
        if problems:
            raise InvalidResponsibilityList(problems, source=source)
        self._by_code = {category.code: category for category in items}
        self._parents = {parent(code) for code in self._by_code}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> CategoryCatalog:
        """Build the catalogue from ``{"categories": [...]}``.

        Raises:
            InvalidResponsibilityList: every problem of the data at once.
        """
        problems = mapping_problems(data, required=("categories",), optional=("description",))
        if not isinstance(data, Mapping):
            raise InvalidResponsibilityList(problems, source=source)
        raw = labelled(section(data, "categories", problems), "categories")
        valid = [item for _, item in validate_items(Category, raw, problems)]
        if problems:
            raise InvalidResponsibilityList([*problems, *_check(valid)], source=source)
        return cls(valid, source=source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CategoryCatalog:
        """Load the catalogue from a YAML file (see the module docstring).

        Raises:
            InvalidResponsibilityList: the file cannot be read, is not valid YAML, or has problems.
        """
        data, problems = read_yaml(path)
        if problems:
            raise InvalidResponsibilityList(problems, source=str(path))
        return cls.from_dict(data, source=str(path))

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> Category:
        """The category with that code.

        Raises:
            UnknownName: no such category.
        """
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownName("category", code, self._by_code) from None

    def codes(self) -> tuple[str, ...]:
        """Every code, in the order given."""
        return tuple(self._by_code)

    def leaves(self) -> tuple[str, ...]:
        """The codes without sub-categories: what reports are usually classified as."""
        return tuple(code for code in self._by_code if code not in self._parents)

    def precedence(self, code: str) -> tuple[Precedence, str] | None:
        """The precedence that applies to ``code`` and the category that declared it.

        The most specific category on the code's path that declares one wins; ``None``
        when none does.
        """
        for candidate in lineage(code):
            category = self._by_code.get(candidate)
            if category is not None and category.precedence is not None:
                return category.precedence, candidate
        return None


def _check(categories: list[Category]) -> Iterator[str]:
    codes = Counter(category.code for category in categories)
    for code, count in codes.items():
        if count > 1:
            yield f"duplicate category {code!r} ({count} times)"
    for code in codes:
        up = parent(code)
        if up is not None and up not in codes:
            yield f"category {code!r}: its parent category {up!r} is not listed"
