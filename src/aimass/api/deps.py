"""Request dependencies: who is calling, in which project, with which role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Query, Request

from aimass.api.edge import bearer_secret
from aimass.auth.entities import Principal, Role
from aimass.auth.service import authenticate
from aimass.errors import Forbidden
from aimass.platform import Platform
from aimass.registry.projects import DEFAULT_PROJECT, read_project_row

ANONYMOUS_ADMIN = Principal(token_id=None, name="anonymous", role="admin", project=None)


@dataclass(frozen=True)
class Ctx:
    """A request's context: the process's platform, the caller and the project it acts on."""

    platform: Platform
    principal: Principal
    project: str


def platform_of(request: Request) -> Platform:
    """The platform ``create_app`` serves."""
    platform: Platform = request.app.state.aimass
    return platform


def principal_of(request: Request) -> Principal:
    """Authenticate the bearer token (or the anonymous admin when auth is off)."""
    platform = platform_of(request)
    if not platform.settings.auth:
        return ANONYMOUS_ADMIN
    with platform.db.session() as session:
        return authenticate(session, _bearer(request))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    return bearer_secret(header.encode("latin-1") if header is not None else None)


#: The ``?project=`` query parameter every project-scoped route takes.
ProjectQuery = Annotated[
    str | None,
    Query(description="project to act on (default: the token's project, else 'default')"),
]


def requires(role: Role) -> Callable[[Request, str | None], Ctx]:
    """A dependency that demands at least ``role`` on the request's project.

    The project is ``?project=``; left out, it is the token's own project for a
    token limited to one, else ``default``. A project that does not exist is a
    404 (after the scope check, so a limited token learns nothing of others).
    """

    def dependency(
        request: Request,
        project: ProjectQuery = None,
    ) -> Ctx:
        platform = platform_of(request)
        with platform.db.session() as session:
            principal = (
                authenticate(session, _bearer(request))
                if platform.settings.auth
                else ANONYMOUS_ADMIN
            )
            if project is None:
                project = principal.project or DEFAULT_PROJECT
            if principal.project is not None and principal.project != project:
                raise Forbidden(
                    f"this token is limited to project {principal.project!r}; "
                    f"send ?project={principal.project} or use a token for {project!r}"
                )
            read_project_row(session, project)
        if not principal.can(role, project):
            raise Forbidden(
                f"this token's role {principal.role!r} may not do this; "
                f"a token with role {role!r} or higher is needed"
            )
        return Ctx(platform=platform, principal=principal, project=project)

    return dependency


viewer = requires("viewer")
editor = requires("editor")
admin_on_project = requires("admin")


def admin(request: Request) -> Ctx:
    """Demands an admin token valid on every project."""
    principal = principal_of(request)
    if not principal.is_global_admin:
        raise Forbidden("an admin token valid on all projects is needed")
    return Ctx(platform=platform_of(request), principal=principal, project=DEFAULT_PROJECT)


def global_admin(what: str) -> Callable[[Request, str | None], Ctx]:
    """Like ``admin_on_project``, but only an admin token valid on all projects may ``what``.

    For actions that run code on the server's nodes (script jobs, trusted uploads):
    a project's admin is not trusted with the whole installation.
    """
    on_project = requires("admin")

    def dependency(
        request: Request,
        project: ProjectQuery = None,
    ) -> Ctx:
        ctx = on_project(request, project)
        refuse_unless_global_admin(ctx.principal, what)
        return ctx

    return dependency


def refuse_unless_global_admin(principal: Principal, what: str) -> None:
    """Forbidden unless ``principal`` is an admin valid on all projects (runs code: ``what``)."""
    if not principal.is_global_admin:
        raise Forbidden(
            f"only an admin token valid on all projects may {what}, since it runs code "
            "on the server's nodes; ask an installation admin (a token with role admin "
            "and no project)"
        )
