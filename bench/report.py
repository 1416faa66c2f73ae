"""Write a benchmark's figures into its own section of docs/BENCHMARKS.md."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def write_section(name: str, body: str) -> None:
    header = (
        f"<!-- {name}:begin -->\n## {name}\n\n"
        f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.machine()}, Python {platform.python_version()}, 2 shared cores._\n\n"
    )
    section = header + body.rstrip() + f"\n<!-- {name}:end -->\n"
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nFigures written by the scripts in `bench/`; re-run them.\n\n"
    )
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->\n", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
