"""Entities: the typed records services return, rows build and the API serializes.

One module a noun (registry, datasets, jobs, ...). They sit below the store so that
``Row.to_entity()`` needs no domain package; they import only pydantic and
``aimass.errors``. Each domain package re-exports its own as ``<package>.entities``.
"""
