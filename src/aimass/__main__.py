"""``python -m aimass`` runs the CLI."""

from aimass.cli import main

main()
