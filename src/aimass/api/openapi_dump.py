"""``python -m aimass.api.openapi_dump``: print the control plane's OpenAPI JSON.

The web UI's TypeScript client is generated from it (``ui/``: ``npm run gen``),
so the UI and the API cannot drift. It builds the app on a throwaway
installation in a temporary folder; nothing is served or kept.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of ``create_app`` on a throwaway installation."""
    from aimass.api.app import create_app
    from aimass.config import Settings
    from aimass.platform import Platform

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings(
            home=home / "home",
            database_url=f"sqlite:///{home / 'db.sqlite'}",
            artifacts=str(home / "artifacts"),
            jobs=False,
        )
        app = create_app(Platform.from_settings(settings))
        document: dict[str, Any] = app.control.openapi()
        return document


def main() -> None:
    """Write the document to stdout, keys sorted, so regenerating shows only real changes."""
    json.dump(openapi_document(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
