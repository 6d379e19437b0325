"""jobs: an index for the keyset-paged list filtered by kind

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Newest first within one kind: a rare kind (tune, evaluate) among 100,000 train jobs
    # is a short walk of this index instead of a scan of the project's index.
    op.create_index("ix_jobs_project_kind_id", "jobs", ["project_id", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_project_kind_id", table_name="jobs")
