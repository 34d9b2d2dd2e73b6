"""What commands write besides their console output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """A command's `--json` report (nothing when no path was given); its folder is made if missing."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
