"""Model bundles: one portable ZIP file per model version, for export and import.

Owns the bundle format (:mod:`aimass.bundles.manifest`) and its writing and safe
extraction (:mod:`aimass.bundles.archive`). Must not import HTTP code
(fastapi, starlette, ``aimass.api``) nor the store; callers pass bytes and folders in.
"""
