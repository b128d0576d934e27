"""File bytes in an S3-compatible object store (AWS S3, MinIO, Ceph, R2…), so that
every process of a cluster reads every upload.

The client is aiobotocore: botocore's request signing and retries on the asyncio
event loop, over aiohttp (already what the model backend talks through). A download
is the object's own streaming response, read chunk by chunk as the client takes
them, with no thread per read and no whole file in memory; boto3 in a thread would
hold a thread for each open download.

- Uploads of at most ``PART_BYTES`` are one ``PutObject``; larger ones are multipart,
  one part in memory at a time, and an upload that fails or goes over its limit is
  aborted, so that no part is left behind.
- ``open`` starts the ``GetObject`` at once: the response holds the object's bytes
  as they were, so a delete while it is read does not cut it short (an object
  store finishes a read in progress, as a POSIX file handle does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, BinaryIO

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from threadline.errors import RequestTooLargeError
from threadline.storage.blobs import CHUNK, BlobMissingError, BlobReader, BlobStore, Joined

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3.client import S3Client

PART_BYTES = 8 * 1024 * 1024
"""A multipart upload's part (S3 takes at least 5 MiB for every part but the last)."""

_MISSING = {"NoSuchKey", "404", "NotFound"}


def _too_large(max_bytes: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"File is too large: the limit is {max_bytes} bytes.",
        param="file",
        code="file_too_large",
    )


class S3BlobStore(BlobStore):
    """Blobs as objects ``<prefix><key>`` in one bucket (which must exist)."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        max_connections: int = 64,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._options: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": AioConfig(
                max_pool_connections=max_connections,
                # Path-style addressing on a store of one's own (MinIO, moto):
                # bucket names need not resolve as hosts there.
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                retries={"mode": "standard"},
            ),
        }
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._opening = asyncio.Lock()

    def object_key(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.prefix + key

    async def _s3(self) -> S3Client:
        """The client, made on first use in the loop that uses it."""
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    stack = AsyncExitStack()
                    creator = get_session().create_client("s3", **self._options)
                    self._client = await stack.enter_async_context(creator)
                    self._stack = stack
        return self._client

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        async def blocks() -> AsyncIterator[bytes]:
            while chunk := await asyncio.to_thread(source.read, PART_BYTES):
                yield chunk

        return await self._store(self.object_key(key), blocks(), max_bytes)

    async def join(self, key: str, sources: Sequence[str]) -> Joined:
        digest = hashlib.md5(usedforsecurity=False)

        async def pieces() -> AsyncIterator[bytes]:
            for source in sources:
                reader = await self.open(source)
                try:
                    async for chunk in reader.chunks():
                        digest.update(chunk)
                        yield chunk
                finally:
                    await reader.aclose()

        size = await self._store(self.object_key(key), _blocks_of(pieces()), None)
        return Joined(size=size, md5=digest.hexdigest())

    async def _store(self, name: str, blocks: AsyncIterator[bytes], max_bytes: int | None) -> int:
        """Store the ``PART_BYTES`` blocks (the last may be shorter) under ``name``:
        one ``PutObject`` for a single short block, else a multipart upload that is
        aborted if anything fails, so that the object appears whole or not at all."""
        s3 = await self._s3()
        chunk = await anext(blocks, b"")
        if max_bytes is not None and len(chunk) > max_bytes:
            raise _too_large(max_bytes)
        if len(chunk) < PART_BYTES:
            await s3.put_object(Bucket=self.bucket, Key=name, Body=chunk)
            return len(chunk)
        upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=name)
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            while chunk:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise _too_large(max_bytes)
                number = len(parts) + 1
                done = await s3.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": done["ETag"], "PartNumber": number})
                chunk = await anext(blocks, b"")
            await s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            abort = s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            with contextlib.suppress(Exception):  # the first error is the one to report
                await asyncio.shield(abort)
            raise
        return size

    async def open(self, key: str) -> BlobReader:
        s3 = await self._s3()
        try:
            got = await s3.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise BlobMissingError(key) from None
            raise
        return _S3Reader(got["Body"], got["ContentLength"])

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def ping(self) -> None:
        s3 = await self._s3()
        await s3.head_bucket(Bucket=self.bucket)

    async def aclose(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()


async def _blocks_of(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``pieces`` regrouped into blocks of ``PART_BYTES`` (the last may be shorter)."""
    block = bytearray()
    async for piece in pieces:
        block += piece
        while len(block) >= PART_BYTES:
            yield bytes(block[:PART_BYTES])
            del block[:PART_BYTES]
    if block:
        yield bytes(block)


class _S3Reader(BlobReader):
    def __init__(self, body: StreamingBody, size: int) -> None:
        self._body = body
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self._body.read(CHUNK):
            yield chunk

    async def aclose(self) -> None:
        await self._body.aclose()
