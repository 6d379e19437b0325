"""Token lifecycle and authentication; secrets are stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.auth.entities import ROLE_RANK, Principal, Role, Token, TokenWithSecret
from aimass.errors import InvalidInput, NotFound, Unauthenticated
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


def create_job_token(session: Session, job_id: int, attempt: int, project: str) -> str:
    """Mint the secret one attempt of a job talks to the server with (editor on its project).

    The job's tokens are deleted when the job ends (``delete_job_tokens``).
    """
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        name=f"job-{job_id}-attempt-{attempt}",
        role="editor",
        project_id=read_project_row(session, project).id,
        token_hash=hash_token(secret),
        job_id=job_id,
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


def revoke_token(session: Session, token_id: int) -> Token:
    """Revoke a token; requests carrying it are refused from now on."""
    row = session.get(TokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is None:
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
    )


def bootstrap_admin(session: Session, token_file: Path) -> bool:
    """On the first start (no token at all), create an admin token and save it owner-only.

    Returns True when a token was created.
    """
    if session.scalar(select(func.count()).select_from(TokenRow)):
        return False
    token = create_token(session, "admin", "admin", None)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = token_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token.secret + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, token_file)
    return True
