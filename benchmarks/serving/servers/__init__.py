"""The peers the serving benchmark compares aimass with (run from .venv-peers)."""
