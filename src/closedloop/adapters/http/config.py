"""What a host configures on the HTTP front door: Open311 intake and the console.

Plain data, no web framework: a host builds these before it imports FastAPI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from closedloop.adapters.http.messages import LANGUAGES
from closedloop.engine.duties import CategoryCatalog
from closedloop.engine.model import Actor
from closedloop.errors import DefinitionError

MediaResolver = Callable[[str], Mapping[str, Any]]
"""Turns an Open311 ``media_url`` into a media reference (``url``, ``content_type``,
``sha256``): the host fetches the file into its own storage and digests it."""

ReporterOf = Callable[[str, Mapping[str, str]], Actor]
"""The reporter of an Open311 POST, from the API client's name and the form fields."""


def anonymous_reporter(client: str, form: Mapping[str, str]) -> Actor:
    """The default reporter of an Open311 POST: the client's account, device or email.

    ``account_id`` names the person in the client app; without one, the device or the
    email; a request with none of them gets a reporter of its own (it can be followed,
    but not confirmed, by anyone).
    """
    import uuid

    for key in ("account_id", "device_id", "email"):
        value = form.get(key, "").strip()
        if value:
            return Actor(f"open311:{client}:{key.removesuffix('_id')}:{value}"[:200])
    return Actor(f"open311:{client}:anonymous:{uuid.uuid4().hex}")


@dataclass(frozen=True, slots=True)
class Open311Config:
    """How the Open311 GeoReport v2 endpoint speaks for the jurisdiction.

    Attributes:
        jurisdiction_id: The jurisdiction served (e.g. ``yunshan.example.gov``); a
            request naming another one is answered 404. ``None`` accepts any.
        categories: The service list: every leaf category is a service, its parent's
            name its group (a responsibility list's ``categories``); without a
            catalogue the list is empty.
        english: Name services by their English names where the catalogue has them.
        asynchronous: Answer a POST with a token (``type`` ``batch``) to be exchanged
            for the request id at ``tokens/{token}``, instead of the id itself.
        channel: The channel cases reported through Open311 record.
        status_notes: Notes per state, over the built-in ones (see docs/http.md).
        public: Anyone may read requests and updates (the spec's default); when false,
            reads need a signed-in actor and show only the cases they may see.
        viewer: Whose sight public reads use; an actor holding every ``sees_all``
            global role of the workflow by default. Contact data never appears
            whatever the viewer.
        media: Turns a ``media_url`` into a media reference (digest and type) kept
            as the report's evidence; without it a POST with ``media_url`` is refused.
        reporter_of: Who reports an Open311 POST (see :func:`anonymous_reporter`).
        service_notice: Text every POST answers with as ``service_notice``.
    """

    jurisdiction_id: str | None = None
    categories: CategoryCatalog | None = None
    english: bool = True
    asynchronous: bool = False
    channel: str = "open311"
    status_notes: Mapping[str, str] = field(default_factory=dict)
    public: bool = True
    viewer: Actor | None = None
    media: MediaResolver | None = None
    reporter_of: ReporterOf = anonymous_reporter
    service_notice: str | None = None

    def __post_init__(self) -> None:
        """Refuse a value no request could be served with (the workflow's states are
        checked against ``status_notes`` when the app is created).

        Raises:
            DefinitionError: naming the attribute and what it takes.
        """
        if self.categories is not None and not isinstance(self.categories, CategoryCatalog):
            raise DefinitionError(
                "Open311Config.categories must be a CategoryCatalog (for example"
                " CategoryCatalog.from_yaml(path)) or None, not"
                f" {type(self.categories).__name__} {self.categories!r}"
            )
        if not isinstance(self.status_notes, Mapping) or not all(
            isinstance(state, str) and isinstance(note, str)
            for state, note in self.status_notes.items()
        ):
            raise DefinitionError(
                "Open311Config.status_notes must map state names to notes (text to text)"
            )


@dataclass(frozen=True, slots=True)
class ConsoleActor:
    """Someone a demo console offers to sign in as.

    Attributes:
        actor: The actor the console acts as.
        label: How the sign-in page names them (e.g. "Dispatcher Wang").
    """

    actor: Actor
    label: str


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The dispatcher console.

    Attributes:
        actors: The demo actors its sign-in page offers. A host with its own login
            leaves this empty and answers ``actor_from_request`` instead.
        language: ``"zh"`` or ``"en"``, the labels' language until a user picks one.
        title: The console's title.
    """

    actors: Sequence[ConsoleActor] = ()
    language: str = "zh"
    title: str = "closedloop"

    def __post_init__(self) -> None:
        """Refuse a language the console has no labels in, and two actors with one id.

        Raises:
            DefinitionError: naming the value and what is allowed.
        """
        if self.language not in LANGUAGES:
            raise DefinitionError(
                f"ConsoleConfig.language must be one of {', '.join(LANGUAGES)},"
                f" not {self.language!r}"
            )
        seen: set[str] = set()
        for offered in self.actors:
            if offered.actor.id in seen:
                raise DefinitionError(
                    f"ConsoleConfig.actors offers {offered.actor.id!r} twice;"
                    " each actor may be offered once"
                )
            seen.add(offered.actor.id)
