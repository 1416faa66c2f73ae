"""A Secret volume as the kubelet keeps it up to date: every version of the files in a
directory of its own (``..<timestamp>``), ``..data`` a symlink to the current one, and each
file a symlink through ``..data``. An update writes the new version beside the old and swaps
``..data`` with one rename, so a reader sees the old files or the new, never a mix; the rename
is what a watcher of the directory sees."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

__all__ = ["SecretVolume"]


class SecretVolume:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, files: dict[str, bytes]) -> None:
        version = self.directory / f"..{time.time_ns()}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
        previous = os.readlink(self.directory / "..data") if self._current() else None
        swap = self.directory / "..data_tmp"
        os.symlink(version.name, swap)
        os.replace(swap, self.directory / "..data")
        for name in files:
            link = self.directory / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if previous is not None:
            shutil.rmtree(self.directory / previous)

    def _current(self) -> bool:
        return (self.directory / "..data").is_symlink()
