"""What a host configures on the HTTP front door: Open311 intake and the console.

Plain data, no web framework: a host builds these before it imports FastAPI.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from closedloop.adapters.http.messages import LANGUAGES
from closedloop.engine.duties import CategoryCatalog
from closedloop.engine.model import Actor
from closedloop.errors import DefinitionError, ValidationError

MediaResolver = Callable[[str], Mapping[str, Any]]
"""Turns an Open311 ``media_url`` into a media reference (``url``, ``content_type``,
``sha256``): the host fetches the file into its own storage and digests it."""

ReporterOf = Callable[[str, Mapping[str, str]], Actor]
"""The reporter of an Open311 POST, from the API client's name and the form fields."""


REPORTER_KEY_BYTES = 32
"""The shortest key :func:`pseudonymous_reporter` takes, in bytes."""

IDENTIFIERS = ("account_id", "device_id", "email")
"""The form fields that name the person behind an Open311 POST, the first given wins."""


def anonymous_reporter(client: str, form: Mapping[str, str]) -> Actor:
    """The default reporter of an Open311 POST: a reporter of its own for each request.

    Its id is the API client's name and a random id (``open311:city-app:anonymous:
    5f0c...``): nothing in it names the person, whatever the form holds, so nothing of
    them stays in the audit trail after their contact data is erased. Two requests of
    one person are two reporters: each request can be followed, but not confirmed (no
    one holds its reporter role). Give :func:`pseudonymous_reporter` a key to keep one
    person's requests under one reporter.
    """
    import uuid

    return Actor(f"open311:{client}:anonymous:{uuid.uuid4().hex}")


def pseudonymous_reporter(key: bytes) -> ReporterOf:
    """Reporters named by a keyed digest of who the person is, for ``Open311Config(
    reporter_of=...)``.

    The form's ``account_id`` (the person's account in the client app), else its
    ``device_id``, else its ``email``, is digested with HMAC-SHA256 under ``key``
    together with the client's name and the field's name; the reporter's id is
    ``open311:{client}:{account|device|email}:{digest}`` (the whole digest, 64 hex
    digits, so two identifiers never meet in one reporter). The same identifier
    through the same client is the same reporter, across restarts, for as long as the
    key stays the same: the person can confirm their cases, and the host finds them
    for :meth:`~closedloop.Engine.subject_report` and
    :meth:`~closedloop.Engine.erase_subject` with ``reporter_of(client, {"email":
    ...}).id``. A request with none of the fields gets a reporter of its own, as
    :func:`anonymous_reporter` gives. Without the key nobody can tell whose digest an
    id is, even by trying every phone number or email: keep it in the host's secret
    store, apart from the database.

    Args:
        key: At least 32 random bytes (``secrets.token_bytes(32)``); changing it makes
            every person a new reporter.

    Raises:
        ValidationError: ``key`` is not bytes, or shorter than 32 bytes.
    """
    if not isinstance(key, bytes) or len(key) < REPORTER_KEY_BYTES:
        raise ValidationError(
            [("reporter_key", f"must be at least {REPORTER_KEY_BYTES} random bytes")],
            subject="Open311 configuration",
        )
    secret = bytes(key)

    def reporter_of(client: str, form: Mapping[str, str]) -> Actor:
        for field_name in IDENTIFIERS:
            value = form.get(field_name, "").strip()
            if value:
                kind = field_name.removesuffix("_id")
                named = json.dumps([client, kind, value], ensure_ascii=False).encode()
                digest = hmac.new(secret, named, hashlib.sha256).hexdigest()
                return Actor(f"open311:{client}:{kind}:{digest}")
        return anonymous_reporter(client, form)

    return reporter_of


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
        reporter_of: Who reports an Open311 POST: by default a reporter of its own
            for each request (:func:`anonymous_reporter`); give
            :func:`pseudonymous_reporter` a key to keep one person's requests together.
            The reporter's id is in every audit event they cause and is never erased:
            it must not hold personal data.
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
