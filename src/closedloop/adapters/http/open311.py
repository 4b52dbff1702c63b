"""Open311 GeoReport v2 over an engine: services, requests, tokens and updates.

:class:`Open311Service` answers each method of the spec with plain items (mappings)
that :mod:`~closedloop.adapters.http.open311_format` renders as JSON or XML; the routes
in :mod:`~closedloop.adapters.http.open311_routes` only parse the HTTP request and pick
the format. A refusal is an :class:`Open311Refusal`: the spec's error list (``code``,
``description``) with its HTTP status. Reads never show a reporter's contact data: no
item has a field for it.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from closedloop.adapters.http.config import Open311Config
from closedloop.adapters.http.open311_format import Nested, w3c
from closedloop.adapters.http.statuses import Status, statuses
from closedloop.engine.model import Actor, AuditEvent, Case, ReporterContact
from closedloop.engine.service import Engine
from closedloop.errors import ClosedLoopError, Open311Refusal, ValidationError

MAX_RESULTS = 1000
"""The most requests (or updates) one GET answers with, as the spec's default limit."""


WINDOW = timedelta(days=90)
"""The default span of a GET, and the longest a start and end date may span."""

TOKEN_KEY = "open311-token:"
"""The prefix of the idempotency key that records which case a token stands for."""

AREA = "area"
"""The one attribute a service definition declares: the report's area (grid) code."""


def _refuse(status: int, code: str, description: str) -> Open311Refusal:
    return Open311Refusal(status, [(code, description)])


class Open311Service:
    """The GeoReport v2 methods, over ``engine`` as ``config`` says."""

    def __init__(self, engine: Engine, config: Open311Config) -> None:
        self._engine = engine
        self._config = config
        self._catalog = config.categories
        self._statuses: dict[str, Status] = statuses(engine.workflow, config.status_notes)
        self._viewer = config.viewer or _public_viewer(engine)

    @property
    def statuses(self) -> Mapping[str, Status]:
        """Every state of the workflow as Open311 shows it."""
        return self._statuses

    def check_jurisdiction(self, given: str | None) -> None:
        """Refuse a jurisdiction other than the one served (an empty one is none)."""
        served = self._config.jurisdiction_id
        if given and served is not None and given != served:
            raise _refuse(404, "jurisdiction_id", f"jurisdiction_id {given!r} was not found")

    # -- services ---------------------------------------------------------------------

    def services(self) -> list[dict[str, object]]:
        """GET services: every leaf category of the catalogue."""
        if self._catalog is None:
            return []
        return [self._service(code) for code in self._catalog.leaves()]

    def _service(self, code: str) -> dict[str, object]:
        assert self._catalog is not None
        parent = code.rpartition(".")[0]
        group = self._name(parent) if parent and parent in self._catalog else None
        return {
            "service_code": code,
            "service_name": self._name(code),
            "description": self._name(code),
            "metadata": True,
            "type": "batch" if self._config.asynchronous else "realtime",
            "keywords": ", ".join(n for n in (self._name(code), group) if n),
            "group": group,
        }

    def _name(self, code: str) -> str:
        assert self._catalog is not None
        category = self._catalog.get(code)
        if self._config.english and category.name_en:
            return category.name_en
        return category.name

    def definition(self, code: str) -> dict[str, object]:
        """GET services/{code}: the report's own fields Open311 has no argument for."""
        self._known_service(code)
        area = {
            "variable": True,
            "code": AREA,
            "datatype": "string",
            "required": False,
            "datatype_description": "An area or grid code, such as D1.S1.C1.G01",
            "order": 1,
            "description": "The grid (area) the report is about, when known",
            "values": Nested("value", []),
        }
        return {"service_code": code, "attributes": Nested("attribute", [area])}

    def _known_service(self, code: str | None) -> str:
        if not code:
            raise _refuse(400, "service_code", "service_code was not provided")
        if self._catalog is None or code not in self._catalog.leaves():
            raise _refuse(404, "service_code", f"service_code {code!r} was not found")
        return code

    # -- POST requests ------------------------------------------------------------------

    def create(self, client: str, form: Mapping[str, str]) -> dict[str, object]:
        """POST requests: report a case from the form (api_key already checked).

        Line breaks come as the client's form sent them: a web client's text area sends
        CRLF (the HTML form submission rules), which the engine would refuse as a
        control character, so CRLF and a lone CR are read as the LF that was typed.
        """
        form = {key: value.replace("\r\n", "\n").replace("\r", "\n") for key, value in form.items()}
        code = self._known_service(form.get("service_code"))
        location = _location(form)
        description = form.get("description", "").strip() or self._name(code)
        contact = _contact(form)
        media = self._media(form.get("media_url", "").strip())
        token = uuid.uuid4().hex if self._config.asynchronous else None
        try:
            case = self._engine.report(
                self._config.reporter_of(client, form),
                description=description,
                location=location,
                category=code,
                channel=self._config.channel,
                contact=contact,
                media=media,
                idempotency_key=None if token is None else TOKEN_KEY + token,
            )
        except ValidationError as error:
            raise Open311Refusal(400, list(error.errors)) from error
        except ClosedLoopError as error:
            raise _refuse(400, "service", str(error)) from error
        answer: dict[str, object] = (
            {"token": token} if token is not None else {"service_request_id": case.id}
        )
        answer["service_notice"] = self._config.service_notice
        answer["account_id"] = form.get("account_id") or None
        return answer

    def _media(self, url: str) -> list[Mapping[str, Any]] | None:
        if not url:
            return None
        if self._config.media is None:
            raise _refuse(400, "media_url", "this endpoint keeps no media: media_url is refused")
        try:
            return [self._config.media(url)]
        except ClosedLoopError as error:
            raise _refuse(400, "media_url", str(error)) from error

    def token(self, token: str) -> dict[str, object]:
        """GET tokens/{token}: the request id a token stands for."""
        with self._engine.store.transaction(read_only=True) as tx:
            record = tx.get_idempotency(TOKEN_KEY + token) if token.isalnum() else None
        if record is None:
            raise _refuse(404, "token", f"token {token!r} was not found")
        return {"service_request_id": record.case_id, "token": token}

    # -- GET requests -------------------------------------------------------------------

    def request(self, case_id: str, viewer: Actor | None) -> dict[str, object]:
        """GET requests/{id}."""
        try:
            case = self._engine.get(case_id, viewer=viewer or self._viewer)
        except ClosedLoopError as error:
            raise _refuse(404, "service_request_id", f"request {case_id!r} was not found") from (
                error
            )
        return self._item(case)

    def requests(self, query: Mapping[str, str], viewer: Actor | None) -> list[dict[str, object]]:
        """GET requests: by ids, or by service codes, dates and statuses."""
        who = viewer or self._viewer
        size = _page_size(query.get("page_size"))
        page = _positive(query.get("page"), "page", 1)
        ids = _listed(query.get("service_request_id"))
        if ids:
            if len(ids) > MAX_RESULTS:
                raise _refuse(400, "service_request_id", f"at most {MAX_RESULTS} ids at once")
            return [self._item(case) for case in self._cases_by_id(ids, who)]
        start, end = self._window(query)
        states = self._states(_listed(query.get("status")))
        codes = _listed(query.get("service_code"))
        for code in codes:
            self._known_service(code)
        found = self._search(who, codes, states, start, end, limit=page * size)
        return [self._item(case) for case in found[(page - 1) * size : page * size]]

    def _cases_by_id(self, ids: Sequence[str], viewer: Actor) -> Iterator[Case]:
        for case_id in dict.fromkeys(ids):
            try:
                yield self._engine.get(case_id, viewer=viewer)
            except ClosedLoopError:
                continue  # the spec lists the requests found; an unknown id is none

    def _window(self, query: Mapping[str, str]) -> tuple[datetime, datetime]:
        start = _instant(query.get("start_date"), "start_date")
        end = _instant(query.get("end_date"), "end_date")
        if start is None and end is None:
            end = self._engine.now()
        if start is None:
            assert end is not None
            start = end - WINDOW
        elif end is None:
            end = start + WINDOW
        if end < start:
            raise _refuse(400, "end_date", "end_date is before start_date")
        if end - start > WINDOW:
            raise _refuse(400, "end_date", "start_date and end_date may span at most 90 days")
        return start, end

    def _states(self, wanted: Sequence[str]) -> list[str] | None:
        if not wanted:
            return None
        unknown = sorted(set(wanted) - {"open", "closed"})
        if unknown:
            raise _refuse(400, "status", f"status must be open or closed, not {unknown[0]!r}")
        return [s.state for s in self._statuses.values() if s.status in wanted]

    def _search(
        self,
        viewer: Actor,
        codes: Sequence[str],
        states: list[str] | None,
        start: datetime,
        end: datetime,
        *,
        limit: int,
    ) -> list[Case]:
        found: dict[str, Case] = {}
        wanted: list[str | None] = [*codes] or [None]
        for code in wanted:
            after, taken = None, 0
            while taken < limit:
                page = self._engine.find(
                    viewer,
                    order="newest",
                    after=after,
                    limit=min(limit - taken, MAX_RESULTS),
                    category=code,
                    state=states,
                    reported_from=start,
                    reported_before=end + timedelta(microseconds=1),
                )
                found.update((case.id, case) for case in page.cases)
                taken += len(page.cases)
                after = page.next_cursor
                if after is None:
                    break
        ordered = sorted(found.values(), key=lambda case: (case.reported_at, case.id))
        return ordered[::-1][:limit]

    def _item(self, case: Case) -> dict[str, object]:
        shown = self._statuses[case.state]
        running = case.deadline
        notes = shown.notes
        if case.merged_into:
            notes = f"{notes} (request {case.merged_into})"
        return {
            "service_request_id": case.id,
            "status": shown.status,
            "status_notes": notes,
            "service_name": self._service_name(case.category),
            "service_code": case.category,
            "description": case.description,
            "agency_responsible": case.lead_unit,
            "service_notice": None,
            "requested_datetime": w3c(case.reported_at),
            "updated_datetime": w3c(case.updated_at),
            "expected_datetime": None if running is None else w3c(running.due_at),
            "address": case.location.address,
            "address_id": None,
            "zipcode": None,
            "lat": case.location.lat,
            "long": case.location.long,
            "media_url": self._media_url(case),
        }

    def _service_name(self, code: str | None) -> str | None:
        if code is None or self._catalog is None or code not in self._catalog:
            return None
        return self._name(code)

    def _media_url(self, case: Case) -> str | None:
        first = self._engine.history(case.id)[0]
        for ref in first.payload.get("media") or []:
            if isinstance(ref, dict) and isinstance(ref.get("url"), str):
                return str(ref["url"])
        return None

    # -- the service-request-updates extension -------------------------------------------

    def updates(self, query: Mapping[str, str], viewer: Actor | None) -> list[dict[str, object]]:
        """GET servicerequestupdates: each change of status a reporter would see.

        Only the events recorded between ``start_date`` and ``end_date`` are read
        (``Engine.changes``: on both shipped stores a range of the index on the events'
        instant), of the cases the viewer sees; with ``service_request_id`` the
        histories of the requests named. More than :data:`MAX_RESULTS` updates are
        refused as soon as they are counted.
        """
        start, end = self._window(query)
        who = viewer or self._viewer
        ids = _listed(query.get("service_request_id"))
        if ids:
            return self._updates_of(ids, who, start, end)
        found: list[dict[str, object]] = []
        for event in self._engine.changes(who, start=start, before=end + timedelta(microseconds=1)):
            if not _seen_by_reporter(event):
                continue
            if len(found) == MAX_RESULTS:
                raise _refuse(400, "end_date", f"more than {MAX_RESULTS} updates: narrow the dates")
            found.append(self._update(event))
        found.sort(key=lambda update: (str(update["updated_datetime"]), str(update["update_id"])))
        return found

    def _updates_of(
        self, ids: Sequence[str], viewer: Actor, start: datetime, end: datetime
    ) -> list[dict[str, object]]:
        """The updates of the requests named, in the window (an unknown id has none)."""
        if len(ids) > MAX_RESULTS:
            raise _refuse(400, "service_request_id", f"at most {MAX_RESULTS} ids at once")
        found: list[dict[str, object]] = []
        for case in self._cases_by_id(ids, viewer):
            found.extend(self._case_updates(case, start, end))
            if len(found) > MAX_RESULTS:
                raise _refuse(400, "end_date", f"more than {MAX_RESULTS} updates: narrow the dates")
        found.sort(key=lambda update: (str(update["updated_datetime"]), str(update["update_id"])))
        return found

    def _case_updates(
        self, case: Case, start: datetime, end: datetime
    ) -> Iterator[dict[str, object]]:
        for event in self._engine.history(case.id):
            if not _seen_by_reporter(event) or not start <= event.at <= end:
                continue
            yield self._update(event)

    def _update(self, event: AuditEvent) -> dict[str, object]:
        shown = self._statuses[event.to_state]
        return {
            "update_id": f"{event.case_id}-{event.seq}",
            "service_request_id": event.case_id,
            "status": shown.status,
            "updated_datetime": w3c(event.at),
            "description": shown.notes,
            "media_url": None,
        }


def _seen_by_reporter(event: AuditEvent) -> bool:
    """A report, or a change of state: what the request's status shows. Timers, notes
    and other changes inside a state stay internal."""
    return event.from_state is None or event.from_state != event.to_state


def _public_viewer(engine: Engine) -> Actor:
    roles = {r.name for r in engine.workflow.roles if r.kind == "global" and r.sees_all}
    return Actor("open311-public", roles=frozenset(roles))


def _location(form: Mapping[str, str]) -> dict[str, object]:
    lat, long = form.get("lat", "").strip(), form.get("long", "").strip()
    address = form.get("address_string", "").strip() or None
    address_id = form.get("address_id", "").strip() or None
    if bool(lat) != bool(long):
        raise _refuse(400, "lat" if not lat else "long", "lat and long are sent together")
    if not (lat or address or address_id):
        raise _refuse(
            400, "location", "one of lat and long, address_string or address_id is required"
        )
    location: dict[str, object] = {"address": address or address_id}
    if lat:
        try:
            location.update(lat=float(lat), long=float(long))
        except ValueError:
            raise _refuse(400, "lat", "lat and long must be numbers (WGS84 degrees)") from None
    area = form.get(f"attribute[{AREA}]", "").strip()
    if area:
        location["area"] = area
    return location


def _name(first: str, last: str) -> str:
    """The reporter's name as it is written: a name in Chinese, Japanese or Korean
    characters family name first with no space (李华), others ``first last``."""
    if first and last and all(unicodedata.east_asian_width(c) in "WF" for c in first + last):
        return last + first
    return " ".join(part for part in (first, last) if part)


def _contact(form: Mapping[str, str]) -> ReporterContact | None:
    name = _name(form.get("first_name", "").strip(), form.get("last_name", "").strip())
    fields = {
        "name": name or None,
        "phone": form.get("phone", "").strip() or None,
        "email": form.get("email", "").strip() or None,
    }
    if not any(fields.values()):
        return None
    return ReporterContact(**fields)


def _listed(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


_W3C = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
"""A W3C date and time with a zone (the profile of ISO 8601 the spec names): minutes,
or seconds with up to six decimals; ``Z`` or an ``hh:mm`` offset."""

EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
"""The first and last instants a date may name: a window of 90 days either side
stays within the calendar."""


def _instant(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    text = text.replace(" ", "+")  # a "+" sent unencoded in a query reads as a space
    value = None
    if _W3C.fullmatch(text):
        try:
            value = datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError):
            value = None
    if value is None:
        raise _refuse(
            400,
            name,
            f"{name} must be a W3C date and time with a zone, e.g. 2026-01-01T00:00:00Z"
            " or 2026-01-01T08:00:00+08:00",
        )
    if not EARLIEST <= value <= LATEST:
        raise _refuse(400, name, f"{name} must be between 0002-01-01 and 9998-12-31")
    return value


def _positive(text: str | None, name: str, default: int) -> int:
    if not text:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) < 1:
        raise _refuse(400, name, f"{name} must be a whole number from 1 to 999999999")
    return int(text)


def _page_size(text: str | None) -> int:
    size = _positive(text, "page_size", MAX_RESULTS)
    if size > MAX_RESULTS:
        raise _refuse(400, "page_size", f"at most {MAX_RESULTS} requests per page")
    return size
