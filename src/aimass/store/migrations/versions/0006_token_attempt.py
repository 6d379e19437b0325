"""tokens: the attempt a job's token was minted for (it writes only as that attempt)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("job_attempt", sa.Integer(), nullable=True))
    # Tokens minted before this column existed are named job-<id>-attempt-<n>: keep them
    # working (as their own attempt only) across the upgrade.
    tokens = sa.table(
        "tokens", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("job_id")
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(tokens.c.id, tokens.c.name).where(tokens.c.job_id.is_not(None))
    ).all()
    for token_id, name in rows:
        attempt = name.rpartition("-attempt-")[2]
        connection.execute(
            sa.text("UPDATE tokens SET job_attempt = :n WHERE id = :id"),
            {"n": int(attempt) if attempt.isdigit() else 0, "id": token_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("job_attempt")
