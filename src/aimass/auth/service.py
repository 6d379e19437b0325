"""Token lifecycle and authentication; secrets are stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import socket
from pathlib import Path

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.auth.entities import ROLE_RANK, Principal, Role, Token, TokenWithSecret
from aimass.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from aimass.registry.projects import read_project_row
from aimass.store.orm import TokenRow, utcnow

TOKEN_PREFIX = "aim_"


def hash_token(secret: str) -> str:
    """The stored form of a token: tokens are random, so a plain sha256 is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, role: str, project: str | None) -> TokenWithSecret:
    """Create a token; its secret is returned this once and never stored."""
    validate_name(name, "token name")
    if role not in ROLE_RANK:
        raise InvalidInput(f"unknown role {role!r}: use viewer, editor or admin")
    project_id = read_project_row(session, project).id if project else None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(name=name, role=role, project_id=project_id, token_hash=hash_token(secret))
    session.add(row)
    session.flush()
    session.refresh(row)
    return TokenWithSecret(**row.to_entity().model_dump(), secret=secret)


def create_job_token(
    session: Session, job_id: int, attempt: int, project: str, project_id: int | None = None
) -> str:
    """Mint the secret one attempt of a job talks to the server with (editor on its project).

    The token writes only as ``attempt``. Tokens of the job's earlier attempts are
    deleted here, so a superseded attempt is refused (401) from the moment its
    successor exists; the job's tokens all go when it ends (``delete_job_tokens``).
    A first attempt has no predecessor, so it skips that delete; a caller that knows
    the project's id passes it and saves reading the project.
    """
    if attempt > 1:
        session.execute(
            delete(TokenRow).where(TokenRow.job_id == job_id, TokenRow.job_attempt != attempt)
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        name=f"job-{job_id}-attempt-{attempt}",
        role="editor",
        project_id=project_id if project_id is not None else read_project_row(session, project).id,
        token_hash=hash_token(secret),
        job_id=job_id,
        job_attempt=attempt,
    )
    session.add(row)
    return secret


def delete_job_tokens(session: Session, job_id: int) -> None:
    """Forget every token minted for the job's attempts: their requests are refused from now."""
    session.execute(delete(TokenRow).where(TokenRow.job_id == job_id))


def list_tokens(session: Session) -> list[Token]:
    """Every token people made, revoked ones included, oldest first (not jobs' own)."""
    rows = session.scalars(select(TokenRow).where(TokenRow.job_id.is_(None)).order_by(TokenRow.id))
    return [r.to_entity() for r in rows]


def _live_global_admin_ids() -> Select[int]:
    return select(TokenRow.id).where(
        TokenRow.role == "admin",
        TokenRow.project_id.is_(None),
        TokenRow.job_id.is_(None),
        TokenRow.revoked_at.is_(None),
    )


def revoke_token(session: Session, token_id: int) -> Token:
    """Revoke a token; requests carrying it are refused from now on.

    The last unrevoked admin token valid on all projects cannot be revoked
    (Conflict): nobody could manage tokens any more.
    """
    row = session.get(TokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is not None:
        return row.to_entity()
    if row.role == "admin" and row.project_id is None and row.job_id is None:
        # Lock every live global admin row first, so two concurrent revokes of the last
        # two admins cannot both see the other one still standing.
        admins = session.scalars(_live_global_admin_ids().with_for_update()).all()
        if set(admins) <= {row.id}:
            raise Conflict(
                f"token {token_id} is the last admin token valid on all projects: "
                "create another admin token first (POST /api/v1/tokens with role admin "
                "and no project), then revoke this one"
            )
    row.revoked_at = utcnow()
    return row.to_entity()


def authenticate(session: Session, secret: str | None) -> Principal:
    """The principal behind a bearer secret, or Unauthenticated saying why not."""
    if not secret:
        raise Unauthenticated(
            "missing token: send 'Authorization: Bearer <token>' "
            "(the local admin token is saved in AIMASS_HOME/token)"
        )
    digest = hash_token(secret)
    row = session.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthenticated("invalid token")
    if row.revoked_at is not None:
        raise Unauthenticated("token has been revoked")
    role: Role = row.role  # type: ignore[assignment]
    return Principal(
        token_id=row.id,
        name=row.name,
        role=role,
        project=row.project.name if row.project else None,
        job_id=row.job_id,
        job_attempt=row.job_attempt,
    )


def bootstrap_admin(session: Session, token_file: Path, node: str | None = None) -> bool:
    """Give this server's home an admin token, saved owner-only in ``token_file``.

    On the first start (no token at all) it is the installation's ``admin``. A
    second server on the same database (its home has no token file yet) gets
    its own admin token, ``admin-node-<node>``, so nobody copies secrets
    between machines: whoever can start a server on the database already holds
    every right, and each node's token can be revoked on its own. Returns True
    when a token was created.
    """
    if session.scalar(select(func.count()).select_from(TokenRow)):
        if token_file.exists():
            return False
        node = re.sub(r"[^A-Za-z0-9._-]", "-", node or socket.gethostname())
        token = create_token(session, f"admin-node-{node}"[:128], "admin", None)
    else:
        token = create_token(session, "admin", "admin", None)
    _save_secret(token_file, token.secret)
    return True


def reset_admin(session: Session, token_file: Path) -> Token:
    """Recover a locked-out installation: a new admin token valid on all projects.

    Its secret replaces ``token_file`` (owner-only). For the installation's own OS
    user (``aimass tokens reset-admin``), who can already read the database.
    """
    token = create_token(session, "admin-reset", "admin", None)
    _save_secret(token_file, token.secret)
    return Token(**token.model_dump(exclude={"secret"}))


def _save_secret(token_file: Path, secret: str) -> None:
    """Write ``secret`` to ``token_file`` atomically, readable by its owner only."""
    token_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = token_file.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # O_CREAT keeps an existing file's mode: start afresh
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, token_file)
