"""Where file bytes live: ``BlobStore``, the seam; ``LocalBlobStore`` keeps them on
disk under the data directory (one machine), ``storage.s3_blobs.S3BlobStore`` in an
S3-compatible object store (every machine of a cluster)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from threadline.errors import RequestTooLargeError

CHUNK = 1024 * 1024


class BlobMissingError(LookupError):
    """No bytes are stored under the key (never stored, or deleted)."""


@dataclass(frozen=True)
class Joined:
    """What ``BlobStore.join`` stored: its size and the MD5 of its bytes (hex)."""

    size: int
    md5: str


class BlobReader(ABC):
    """The bytes of one blob as they were when it was opened; close it when done."""

    size: int

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes, in order, in chunks of at most ``CHUNK``."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the reader holds (safe to call twice)."""


class BlobStore(ABC):
    @abstractmethod
    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        """Store ``source`` under ``key``; return its size. Over ``max_bytes``: raise
        ``RequestTooLargeError`` and keep nothing."""

    @abstractmethod
    async def join(self, key: str, sources: Sequence[str]) -> Joined:
        """Store under ``key`` the bytes of the blobs ``sources``, one after the
        other, streamed (never whole in memory); the new blob appears whole or not at
        all. ``BlobMissingError`` when a source is missing (then nothing is kept)."""

    @abstractmethod
    async def open(self, key: str) -> BlobReader:
        """A reader of the bytes stored under ``key``, whole even if ``key`` is deleted
        while it reads; ``BlobMissingError`` when there is none."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error, and readers already open
        still get every byte."""

    async def aclose(self) -> None:
        """Release connections (the store is not used afterwards)."""
        return None

    @abstractmethod
    async def ping(self) -> None:
        """Raise if blobs cannot be stored (the store unreachable or read-only)."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root} is not writable")

    def local_path(self, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key[-2:] / key

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        return await asyncio.to_thread(self._put, key, source, max_bytes)

    @contextmanager
    def _writing(self, key: str) -> Iterator[BinaryIO]:
        """A file to write ``key``'s bytes into: when the block ends without an error
        they are synced and appear under ``key`` whole; otherwise nothing does."""
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        try:
            with partial.open("wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def _put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        size = 0
        with self._writing(key) as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise RequestTooLargeError(
                        f"File is too large: the limit is {max_bytes} bytes.",
                        param="file",
                        code="file_too_large",
                    )
                out.write(chunk)
        return size

    async def join(self, key: str, sources: Sequence[str]) -> Joined:
        return await asyncio.to_thread(self._join, key, list(sources))

    def _join(self, key: str, sources: list[str]) -> Joined:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with self._writing(key) as out:
            for source in sources:
                try:
                    handle = self.local_path(source).open("rb")
                except FileNotFoundError:
                    raise BlobMissingError(source) from None
                with handle:
                    while chunk := handle.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        return Joined(size, digest.hexdigest())

    async def open(self, key: str) -> BlobReader:
        # The handle holds the file: a delete unlinks the name, the bytes stay until
        # the handle is closed (POSIX semantics).
        try:
            handle = await asyncio.to_thread(self.local_path(key).open, "rb")
        except FileNotFoundError:
            raise BlobMissingError(key) from None
        return _LocalReader(handle, os.fstat(handle.fileno()).st_size)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.local_path(key).unlink, True)

    def wipe(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _LocalReader(BlobReader):
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        left = self.size
        while left > 0 and (chunk := await asyncio.to_thread(self._handle.read, min(CHUNK, left))):
            left -= len(chunk)
            yield chunk

    async def aclose(self) -> None:
        self._handle.close()
