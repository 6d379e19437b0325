"""Metadata store: SQLAlchemy engine and sessions, ORM rows, Alembic migrations.

Rows never leave this package's callers in the service layer: services convert
them to entities with ``to_entity()`` (the entities live below, in
``aimass.entities``). Must not import the API or any service package.
"""
