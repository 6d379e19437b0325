"""job runtime: attempt tokens, user code for script jobs, evaluation reports

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch.create_index("ix_tokens_job_id", ["job_id"])
        batch.create_foreign_key(
            "fk_tokens_job_id_jobs", "jobs", ["job_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("source_key", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("source_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("source_name", sa.String(length=256), nullable=True))
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"], ["dataset_versions.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evaluations_version_id", "evaluations", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_version_id", table_name="evaluations")
    op.drop_table("evaluations")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("source_name")
        batch.drop_column("source_sha256")
        batch.drop_column("source_key")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_constraint("fk_tokens_job_id_jobs", type_="foreignkey")
        batch.drop_index("ix_tokens_job_id")
        batch.drop_column("job_id")
