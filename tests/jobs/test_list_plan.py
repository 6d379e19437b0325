"""The paged lists read an index in order and stop at the page, on SQLite and PostgreSQL.

A list that sorts every one of a project's rows to show the newest 50 is fast with 100
rows and slow with 100,000 (SQLite's first page of jobs took ~66 ms at 100,000 jobs when
the project was joined rather than compared as a value). These tests read the plan the
database chooses for the statements the services send, over enough rows for the planner
to care, so a query shape that brings the sort back fails here, not in a benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from aimass.jobs import service
from aimass.registry import service as registry
from aimass.registry.entities import VersionQuery
from aimass.store.db import Database
from aimass.store.orm import JobRow, ModelRow, ModelVersionRow, ProjectRow

JOBS = 3000
VERSIONS = 1000


def _seed(db: Database) -> None:
    """Jobs (a few tune jobs among train ones) and one model's versions, in one project.

    One project, as most installations have: the planner then reckons that looping over
    projects first is cheap, which is the plan that sorted every job.
    """
    start = datetime(2026, 1, 1, tzinfo=UTC)
    states = ("succeeded", "failed", "cancelled", "succeeded")
    with db.session() as s:
        default = s.scalars(sa.select(ProjectRow.id).where(ProjectRow.name == "default")).one()
        s.execute(
            sa.insert(JobRow),
            [
                {
                    "project_id": default,
                    "kind": "tune" if i % 500 == 1 else "train",
                    "entry": f"classical.entry_{i % 7}",
                    "params": {},
                    "cpu": 1.0,
                    "state": states[i % 4],
                    "created_at": start + timedelta(seconds=i),
                }
                for i in range(JOBS)
            ],
        )
        model = ModelRow(project_id=default, name="many", description="")
        s.add(model)
        s.flush()
        s.execute(
            sa.insert(ModelVersionRow),
            [
                {
                    "model_id": model.id,
                    "version": v + 1,
                    "flavor": "onnx",
                    "filename": "model.onnx",
                    "artifact_key": f"models/none/{v}",
                    "sha256": "0" * 64,
                    "size": 1,
                    "description": "",
                    "status": "ready",
                    "created_at": start,
                }
                for v in range(VERSIONS)
            ],
        )
    with db.engine.connect() as conn:  # statistics, as `PRAGMA optimize` or autovacuum keep
        conn.execute(sa.text("ANALYZE"))
        conn.commit()


@contextmanager
def _statements(db: Database, table: str) -> Iterator[list[str]]:
    """The SELECTs from ``table`` sent while inside, with their values written in."""
    sent: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _many: bool) -> None:
        if statement.startswith("SELECT") and f"\nFROM {table} " in statement:
            query = context.compiled.statement
            sent.append(str(query.compile(db.engine, compile_kwargs={"literal_binds": True})))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _plan(db: Database, statement: str) -> str:
    """The database's plan for one statement, as one string."""
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement).all()
            return "\n".join(str(r[3]) for r in rows)
        # A few thousand rows make a sequential scan cheap; what matters is that an index
        # can give the order, so a page costs its own rows, not the table's.
        conn.exec_driver_sql("SET enable_seqscan = off")
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement).all())


def _list_plan(db: Database, table: str, call: Callable[[], object]) -> str:
    with _statements(db, table) as sent:
        call()
    assert len(sent) == 1, sent
    return _plan(db, sent[0])


JOB_PAGES: dict[str, tuple[dict[str, Any], str]] = {
    "first page": ({}, "ix_jobs_project_id_id"),
    "by state": ({"state": "failed"}, "ix_jobs_project_state_id"),
    "by kind": ({"kind": "tune"}, "ix_jobs_project_kind_id"),
    "by entry": ({"entry": "classical.entry_3"}, "ix_jobs_project_entry_id"),
    "page by cursor": ({"after": JOBS // 2}, ""),
    "by state, by cursor": ({"state": "failed", "after": JOBS // 2}, "ix_jobs_project_state_id"),
}


def test_job_pages_walk_an_index_newest_first_without_sorting(db: Database) -> None:
    _seed(db)
    sqlite = db.engine.dialect.name == "sqlite"
    for case, (filters, index) in JOB_PAGES.items():
        with db.session() as s:
            plan = _list_plan(
                db, "jobs", lambda f=filters: service.list_jobs(s, "default", limit=50, **f)
            )
        if sqlite:
            assert "TEMP B-TREE" not in plan, (case, plan)
            assert (index or "jobs USING") in plan, (case, plan)
        else:
            assert "Sort" not in plan, (case, plan)
            assert "Index Scan Backward" in plan, (case, plan)
    with db.session() as s:
        page = service.list_jobs(s, "default", limit=50, kind="tune")
    assert [j.kind for j in page] == ["tune"] * len(page) and len(page) >= 5


def test_version_search_walks_the_model_version_index_without_sorting(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        plan = _list_plan(
            db, "model_versions", lambda: registry.search_versions(s, "default", VersionQuery(), 50)
        )
        versions = registry.search_versions(s, "default", VersionQuery(), 50)
    assert [v.version for v in versions] == list(range(VERSIONS, VERSIONS - 50, -1))
    # PostgreSQL sorts the matches (an incremental sort within each model at best), which
    # costs ~1 ms at 10,000 versions; SQLite's temporary B-tree cost ~40 ms.
    if db.engine.dialect.name == "sqlite":
        assert "TEMP B-TREE" not in plan, plan
        assert "model_versions USING INDEX" in plan, plan
