"""Request dependencies: who is calling, in which project, with which role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Query, Request

from aimass.api.state import AppState
from aimass.auth.entities import Principal, Role
from aimass.auth.service import authenticate
from aimass.errors import Forbidden
from aimass.registry.projects import DEFAULT_PROJECT

ANONYMOUS_ADMIN = Principal(token_id=None, name="anonymous", role="admin", project=None)


@dataclass(frozen=True)
class Ctx:
    """A request's context: the process state, the caller and the project it acts on."""

    state: AppState
    principal: Principal
    project: str


def app_state(request: Request) -> AppState:
    """The process state created by ``create_app``."""
    state: AppState = request.app.state.aimass
    return state


def principal_of(request: Request) -> Principal:
    """Authenticate the bearer token (or the anonymous admin when auth is off)."""
    state = app_state(request)
    if not state.settings.auth:
        return ANONYMOUS_ADMIN
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    with state.db.session() as session:
        return authenticate(session, secret.strip() if scheme.lower() == "bearer" else None)


def requires(role: Role) -> Callable[[Request, str], Ctx]:
    """A dependency that demands at least ``role`` on the request's project."""

    def dependency(
        request: Request,
        project: str = Query(DEFAULT_PROJECT, description="project to act on"),
    ) -> Ctx:
        principal = principal_of(request)
        if not principal.can(role, project):
            if principal.project is not None and principal.project != project:
                raise Forbidden(f"this token is limited to project {principal.project!r}")
            raise Forbidden(
                f"this token's role {principal.role!r} may not do this; "
                f"a token with role {role!r} or higher is needed"
            )
        return Ctx(state=app_state(request), principal=principal, project=project)

    return dependency


viewer = requires("viewer")
editor = requires("editor")
admin_on_project = requires("admin")


def admin(request: Request) -> Ctx:
    """Demands an admin token valid on every project."""
    principal = principal_of(request)
    if principal.role != "admin" or principal.project is not None:
        raise Forbidden("an admin token valid on all projects is needed")
    return Ctx(state=app_state(request), principal=principal, project=DEFAULT_PROJECT)
