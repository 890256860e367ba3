"""Output files a court would accept: written whole or not at all, never through a planted symlink, never over
an existing file unless asked (``--force``), each listed with its sha256 in a manifest.

:class:`OutputDir` is used by ``export``, ``decrypt`` and ``analyze -o``: every file is written to a fresh
temporary name in the target directory (``O_EXCL``, so no symlink is followed), flushed to disk, then renamed
onto its final name. Interrupted (Ctrl-C, a crash, a full disk), the temporary file is removed: no truncated
file that looks complete is ever left behind. ``rename`` replaces a directory entry and never writes through
a symlink, so even with ``force`` a planted ``decrypted.pcap -> ../victim.txt`` is replaced, not followed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import RtcForensicsError

MANIFEST = "manifest.json"
SHA256SUMS = "SHA256SUMS"


def sha256_file(path: str | os.PathLike[str]) -> str:
    # one small buffer, reused: hashing what was just written needs no new memory, so a report is still
    # written when an analysis has used up the memory the process may have (frames failed: an incomplete run)
    h = hashlib.sha256()
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _why(e: OSError) -> str:
    return e.strerror or str(e)


class OutputDir:
    """A directory receiving output files atomically; ``manifest()`` lists what was written and what not."""

    def __init__(self, path: str | os.PathLike[str], *, force: bool = False, create: bool = True) -> None:
        self.path = Path(path)
        self.force = force
        self.files: list[dict[str, Any]] = []
        self.missing: list[dict[str, str]] = []
        if self.path.is_symlink() and not force:
            raise RtcForensicsError(
                f"{self.path}: output directory is a symbolic link; refusing to follow it "
                "(use --force to write there anyway)"
            )
        if self.path.exists() and not self.path.is_dir():
            raise RtcForensicsError(f"{self.path}: exists and is not a directory")
        if not create and not self.path.is_dir():
            raise RtcForensicsError(f"{self.path}: cannot write output (no such directory)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RtcForensicsError(f"{self.path}: cannot create output directory ({_why(e)})") from None

    def check_free(self, name: str) -> Path:
        """The final path of ``name``; raises when it exists (file, directory or symlink) and not ``force``."""
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise RtcForensicsError(f"{name!r}: not a plain output file name")
        target = self.path / name
        if os.path.lexists(target):
            if target.is_symlink() and not self.force:
                raise RtcForensicsError(
                    f"{target}: exists as a symbolic link; refusing to follow or replace it "
                    "(use --force to replace the link itself)"
                )
            if target.is_dir() and not target.is_symlink():
                raise RtcForensicsError(f"{target}: exists and is a directory")
            if not self.force:
                raise RtcForensicsError(f"{target}: exists; refusing to overwrite it (use --force)")
        return target

    @contextmanager
    def open_temp(self, name: str) -> Iterator[Path]:
        """A fresh temporary path beside ``name``'s final place; renamed onto it when the block ends without
        an exception, removed otherwise."""
        target = self.check_free(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.path)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(
                tmp_path, 0o666 & ~_umask()
            )  # mkstemp made it 0600: give it the mode of a plain new file
            self.check_free(name)  # nothing planted meanwhile
            os.replace(tmp_path, target)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        self.files.append({"name": name, "bytes": target.stat().st_size, "sha256": sha256_file(target)})

    def write(self, name: str, writer: Callable[[Path], Any]) -> Path:
        """``writer(tmp_path)`` writes the content; the file appears under ``name`` only when complete."""
        with self.open_temp(name) as tmp:
            writer(tmp)
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        return self.write(name, lambda p: p.write_text(text, encoding="utf-8"))

    def adopt(self, produced: Path, name: str | None = None) -> Path:
        """Move a file produced elsewhere (e.g. in a private temporary directory) into place atomically."""
        name = name or produced.name
        with self.open_temp(name) as tmp:
            shutil.copyfile(produced, tmp, follow_symlinks=False)
        return self.path / name

    def not_written(self, name: str, error: str) -> None:
        self.missing.append({"name": name, "error": error})

    @contextmanager
    def private_dir(self) -> Iterator[Path]:
        """A private temporary directory inside the output directory (same file system), removed after."""
        tmp = tempfile.mkdtemp(prefix=".rtcf-", dir=self.path)
        try:
            yield Path(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def manifest(self, capture: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write ``manifest.json`` (tool, capture and its sha256, files with size and sha256, files that could
        not be written and why) and ``SHA256SUMS`` (``sha256sum -c`` format)."""
        doc = {
            "tool": {"name": "rtcforensics", "version": __version__},
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "capture": capture or {},
            "files": list(self.files),
            "not_written": list(self.missing),
            **(extra or {}),
        }
        files = list(self.files)
        sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in files)
        self.write_text(SHA256SUMS, sums)
        self.write_text(MANIFEST, json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        return self.path / MANIFEST


def write_atomic(path: str | os.PathLike[str], text: str, *, force: bool = True) -> Path:
    """One text file written atomically (temporary name in the same directory, then rename)."""
    p = Path(path)
    try:
        out = OutputDir(p.parent, force=force, create=False)
    except RtcForensicsError:
        raise RtcForensicsError(f"{p}: cannot write output (no such directory {p.parent})") from None
    try:
        return out.write_text(p.name, text)
    except OSError as e:
        raise RtcForensicsError(f"{p}: cannot write output ({_why(e)})") from None
