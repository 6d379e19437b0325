"""HTTP only: the FastAPI app, its middleware, error mapping and thin routes.

Routes parse, call one service function and return an entity; they never
raise HTTPException (``aimass.api.errors`` maps ``aimass.errors`` in one place).
"""
