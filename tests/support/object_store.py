"""A local S3-compatible object store for tests: moto's server on a free loopback
port, in its own process, and a view of one bucket in it."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.support.polling import wait_until
from threadline.testing import free_port

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


@dataclass(frozen=True)
class Bucket:
    """One bucket of the store, and the settings that point a server at it."""

    endpoint: str
    name: str
    prefix: str

    def settings(self) -> dict[str, object]:
        """``THREADLINE_*`` overrides (as field names) for a server on this bucket."""
        return {
            "blob_store": "s3",
            "s3_endpoint_url": self.endpoint,
            "s3_bucket": self.name,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_prefix": self.prefix,
        }

    def env(self) -> dict[str, str]:
        """The same settings as environment variables, for a server process."""
        return {f"THREADLINE_{k.upper()}": str(v) for k, v in self.settings().items()}

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def stored(self) -> list[str]:
        """Every object's key under the prefix."""
        with closing(self.client()) as s3:
            listed = s3.list_objects_v2(Bucket=self.name, Prefix=self.prefix)
        return [entry["Key"] for entry in listed.get("Contents", [])]

    def read(self, key: str) -> bytes:
        with closing(self.client()) as s3:
            return bytes(s3.get_object(Bucket=self.name, Key=key)["Body"].read())

    def unfinished_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        with closing(self.client()) as s3:
            listed = s3.list_multipart_uploads(Bucket=self.name)
        return [upload["Key"] for upload in listed.get("Uploads", [])]


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """moto's S3-compatible server on loopback; yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (log_dir / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError((log_dir / "moto.log").read_text())
            try:
                return httpx.get(endpoint + "/moto-api/", timeout=1).status_code < 500
            except httpx.TransportError:
                return False

        wait_until("moto's server to listen", up, 30)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def new_bucket(endpoint: str) -> Bucket:
    """A fresh bucket with a prefix of its own."""
    bucket = Bucket(endpoint, f"tl-{secrets.token_hex(6)}", "threadline/files/")
    with closing(bucket.client()) as s3:
        s3.create_bucket(Bucket=bucket.name)
    return bucket
