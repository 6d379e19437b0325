"""Metadata store: SQLAlchemy engine and sessions, ORM rows, Alembic migrations.

Rows never leave this package's callers in the service layer: services convert
them to entities with ``to_entity()``. Must not import the API.
"""
