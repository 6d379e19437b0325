"""/api/v1 identity, projects and tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from aimass.api.deps import Ctx, admin, viewer
from aimass.api.ids import Id
from aimass.auth import service as auth
from aimass.entities.auth import Principal, Token, TokenCreate, TokenWithSecret
from aimass.entities.projects import Project, ProjectCreate
from aimass.registry import projects

router = APIRouter(prefix="/api/v1", tags=["access"])
Admin = Annotated[Ctx, Depends(admin)]
Viewer = Annotated[Ctx, Depends(viewer)]


@router.get("/whoami")
def whoami(ctx: Viewer) -> Principal:
    """The caller's token name, role and project scope."""
    return ctx.principal


@router.get("/projects")
def list_projects(ctx: Viewer) -> list[Project]:
    """Every project."""
    with ctx.platform.db.session() as session:
        return projects.list_projects(session)


@router.post("/projects", status_code=201)
def create_project(body: ProjectCreate, ctx: Admin) -> Project:
    """Create a project (admin)."""
    with ctx.platform.db.session() as session:
        return projects.create_project(session, body.name)


@router.post("/tokens", status_code=201)
def create_token(body: TokenCreate, ctx: Admin) -> TokenWithSecret:
    """Create a token (admin); its secret is shown only in this answer."""
    with ctx.platform.db.session() as session:
        return auth.create_token(session, body.name, body.role, body.project)


@router.get("/tokens")
def list_tokens(ctx: Admin) -> list[Token]:
    """Every token, without secrets (admin)."""
    with ctx.platform.db.session() as session:
        return auth.list_tokens(session)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: Id, ctx: Admin) -> Token:
    """Revoke a token (admin); the last admin token valid on all projects cannot be (409)."""
    with ctx.platform.db.session() as session:
        token = auth.revoke_token(session, token_id)
    # Committed: now make this process's inference path forget the token at once (other
    # processes follow within their cache's TTL, AuthCache.ttl_s).
    ctx.platform.auth_cache.clear()
    return token
