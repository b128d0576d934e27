"""The official ``openai`` Node SDK (4.69.0, pinned in ``tests/node``) drives a live
server unchanged: a polling run and a streaming run (``tests/node/run.mjs``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import openai
import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """The ``node`` executable, with ``tests/node/node_modules`` installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the Node SDK test needs Node 18+")
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").is_file():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


def test_node_sdk_polls_and_streams(client: openai.OpenAI, node_sdk: str) -> None:
    env = os.environ | {
        "THREADLINE_BASE_URL": str(client.base_url),
        "THREADLINE_API_KEY": client.api_key,
    }
    done = subprocess.run(
        [node_sdk, str(NODE_DIR / "run.mjs")],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"run.mjs failed:\n{done.stdout}\n{done.stderr}"
    assert "node sdk ok" in done.stdout
