"""Where file bytes live. ``BlobStore`` is the seam for an object store later;
``LocalBlobStore`` keeps them on disk under the data directory."""

from __future__ import annotations

import asyncio
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from threadline.errors import RequestTooLargeError

CHUNK = 1024 * 1024


class BlobStore(ABC):
    @abstractmethod
    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        """Store ``source`` under ``key``; return its size. Over ``max_bytes``: raise
        ``RequestTooLargeError`` and keep nothing."""

    @abstractmethod
    def read(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes, in chunks."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A path on this machine with the bytes (for tools that need a file)."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key[-2:] / key

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        return await asyncio.to_thread(self._put, key, source, max_bytes)

    def _put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        size = 0
        try:
            with partial.open("wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise RequestTooLargeError(
                            f"File is too large: the limit is {max_bytes} bytes.",
                            param="file",
                            code="file_too_large",
                        )
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return size

    async def read(self, key: str) -> AsyncIterator[bytes]:
        # No handle stays open between chunks: a reader that stops early (a client
        # gone mid-download) leaves nothing for the garbage collector to close.
        path = self.local_path(key)
        offset = 0
        while chunk := await asyncio.to_thread(_read_at, path, offset):
            offset += len(chunk)
            yield chunk

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.local_path(key).unlink, True)

    def wipe(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _read_at(path: Path, offset: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(CHUNK)
