"""Announce every committed change to what the api caches (`access_cache`): tokens, identities,
memberships, applications, profiles, enrollments, policies and CAs.

Hooked into the api's ORM sessions rather than called from each route: every write to these
tables goes through a session (routes, the bootstrap admin, JWT login), and a route added later
is covered without anyone remembering to announce its change. A session that changes one of
them gets a `configuration.changed` outbox row in the same transaction; after its commit this
replica forgets its caches at once and wakes its relay, which publishes the event to the other
replicas. A rolled back change announces nothing.

Inserts of tokens, identities, applications, policies and CAs announce nothing: no cached answer
can mention a row that did not exist (misses are never cached). A new membership or enrollment
does change cached answers (an actor's roles; a target's `attached`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession
from sqlmodel.orm.session import Session

from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import ConfigurationChanged
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import (
    ApiToken,
    Application,
    CertificateAuthority,
    Identity,
    Membership,
    OutboxMessage,
    Policy,
    Profile,
    ProfileAttachment,
)
from certforge.common.outbox import message_row

WATCHED: dict[type[Any], str] = {
    ApiToken: "api_token",
    Identity: "identity",
    Membership: "membership",
    Application: "application",
    Profile: "profile",
    ProfileAttachment: "enrollment",
    Policy: "policy",
    CertificateAuthority: "ca",
}
"""The tables whose rows the caches hold answers about, by the name the event gives them."""

_NEW_CHANGES_NOTHING = frozenset({ApiToken, Identity, Application, Policy, CertificateAuthority})
_BY_TABLE = {cls.__tablename__: kind for cls, kind in WATCHED.items()}
_ANNOUNCED = "certforge.configuration_changed"
"""`session.info` key: the kinds this transaction has announced so far."""
_SOURCE = "/certforge/api"


def changed_kinds(session: OrmSession) -> set[str]:
    """The kinds of watched rows that the session's pending flush inserts, updates or deletes."""
    kinds = {WATCHED[type(o)] for o in session.deleted if type(o) in WATCHED}
    kinds |= {
        WATCHED[type(o)]
        for o in session.new
        if type(o) in WATCHED and type(o) not in _NEW_CHANGES_NOTHING
    }
    kinds |= {
        WATCHED[type(o)]
        for o in session.dirty
        if type(o) in WATCHED and session.is_modified(o, include_collections=False)
    }
    return kinds


def watch_changes(
    sessions: SessionFactory, subjects: Subjects, on_commit: Callable[[], None]
) -> None:
    """Make the sessions of `sessions` announce changes of watched rows; `on_commit` runs after
    each commit that announced one (forget this replica's caches, wake the relay)."""

    class AnnouncingSession(Session):
        """The api's ORM session: announces configuration changes (module docstring)."""

    def announce(session: OrmSession, kinds: set[str]) -> None:
        announced: set[str] = session.info.setdefault(_ANNOUNCED, set())
        if kinds <= announced:
            return
        announced |= kinds
        data = ConfigurationChanged(resources=sorted(kinds))
        row = message_row(subjects.configuration_changed, CloudEvent.wrap(data, source=_SOURCE))
        session.add(OutboxMessage(**row))

    @event.listens_for(AnnouncingSession, "before_flush")
    def before_flush(session: Session, _context: object, _instances: object) -> None:
        kinds = changed_kinds(session)
        if kinds:
            announce(session, kinds)

    @event.listens_for(AnnouncingSession, "do_orm_execute")
    def bulk_write(state: ORMExecuteState) -> None:
        """`update(Profile)…` / `delete(Membership)…` statements bypass the flush."""
        if not (state.is_update or state.is_delete):
            return
        table = getattr(state.statement, "table", None)
        kind = _BY_TABLE.get(getattr(table, "name", ""))
        if kind is not None:
            announce(state.session, {kind})

    @event.listens_for(AnnouncingSession, "after_commit")
    def after_commit(session: Session) -> None:
        if session.info.pop(_ANNOUNCED, None):
            on_commit()

    @event.listens_for(AnnouncingSession, "after_rollback")
    def after_rollback(session: Session) -> None:
        session.info.pop(_ANNOUNCED, None)

    sessions.configure(sync_session_class=AnnouncingSession)
