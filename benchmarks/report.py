"""Writing benchmark results: a JSON file per benchmark and its own section of benchmarks/README.md."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def write_results(name: str, results: dict, table: str, notes: str = "") -> Path:
    """Save `results` as benchmarks/results/<name>.json and put `table` in README.md between this
    benchmark's markers, leaving other benchmarks' sections as they are."""
    out = HERE / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), **results}, indent=2, default=_jsonable))
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n\nEach script writes results/<name>.json and its section below.\n"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n## {name}\n\n{notes.strip()}\n\n{table.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    readme.write_text(text)
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
