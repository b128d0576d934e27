"""Embedders: the shared contract on each implementation, then each one's own behaviour."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable

import httpx2
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from threadline.retrieval.embedders import (
    Embedder,
    HashEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
    embed_in_batches,
    make_embedder,
)
from threadline.retrieval.embedders.local import MINILM
from threadline.retrieval.errors import EmbedderError
from threadline.settings import Settings

TEXTS = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "",
    "naïve café 東京 🎉",
]

Handler = Callable[[httpx2.Request], httpx2.Response]


def fake_endpoint(dimensions: int, seen: list[dict[str, object]] | None = None) -> Handler:
    """An OpenAI-style ``/v1/embeddings``: HashEmbedder vectors, scaled, in reverse order."""
    hashing = HashEmbedder(dimensions)

    def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path.endswith("/embeddings")
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        vectors = hashing.embed_sync(body["input"]) * 3.0  # not normalised, like some servers
        data = [
            {"object": "embedding", "index": i, "embedding": vectors[i].tolist()}
            for i in reversed(range(len(vectors)))
        ]
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    return handle


def openai_embedder(handler: Handler, *, model: str = "nomic-embed-text", dimensions: int = 64,
                    max_retries: int = 0) -> OpenAIEmbedder:  # fmt: skip
    return OpenAIEmbedder(
        model=model,
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-test",
        dimensions=dimensions,
        max_retries=max_retries,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


@pytest.fixture(scope="module")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


@pytest.fixture(params=["hash", "openai", pytest.param("local", marks=pytest.mark.smoke)])
async def embedder(request: pytest.FixtureRequest) -> AsyncIterator[Embedder]:
    if request.param == "hash":
        yield HashEmbedder()
    elif request.param == "openai":
        remote = openai_embedder(fake_endpoint(64))
        yield remote
        await remote.aclose()
    else:
        yield request.getfixturevalue("local_embedder")


async def test_contract_shape_dtype_and_unit_rows(embedder: Embedder) -> None:
    vectors = await embedder.embed(TEXTS)
    assert isinstance(embedder, Embedder)
    assert vectors.shape == (len(TEXTS), embedder.dimensions)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_contract_deterministic_and_order_preserving(embedder: Embedder) -> None:
    forward = await embedder.embed(TEXTS)
    backward = await embedder.embed(TEXTS[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    assert (await embedder.embed([])).shape == (0, embedder.dimensions)


async def test_contract_shared_words_are_closer(embedder: Embedder) -> None:
    anchor, near, far = await embedder.embed(
        [
            "replace the pump impeller gasket",
            "the pump impeller gasket must be replaced",
            "quarterly revenue grew in the northern region",
        ]
    )
    assert float(anchor @ near) > float(anchor @ far)


async def test_embed_in_batches_reports_progress_and_matches_one_call() -> None:
    hashing = HashEmbedder(32)
    texts = [f"chunk {n} of a long file" for n in range(10)]
    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        seen.append((done, total))

    vectors = await embed_in_batches(hashing, texts, batch_size=4, on_progress=progress)
    np.testing.assert_array_equal(vectors, hashing.embed_sync(texts))
    assert seen == [(4, 10), (8, 10), (10, 10)]
    calls: list[int] = []
    await embed_in_batches(hashing, texts, batch_size=64, on_progress=lambda d, t: calls.append(d))
    assert calls == [10]


async def test_embed_in_batches_stops_when_progress_raises() -> None:
    def cancelled(done: int, total: int) -> None:
        raise RuntimeError("file deleted")

    with pytest.raises(RuntimeError, match="file deleted"):
        await embed_in_batches(HashEmbedder(), ["a", "b"], batch_size=1, on_progress=cancelled)


# --- HashEmbedder -----------------------------------------------------------------


def test_hash_vectors_are_fixed_across_processes() -> None:
    # blake2b, not Python's salted hash(): the vector is part of the test contract.
    vector = HashEmbedder(16).embed_sync(["pump"])[0]
    assert np.count_nonzero(vector) > 0
    assert np.array_equal(vector, HashEmbedder(16).embed_sync(["PUMP!"])[0])
    assert HashEmbedder(16).name == "hash-16"


def test_hash_rejects_tiny_dimensions() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        HashEmbedder(4)


# --- OpenAIEmbedder ------------------------------------------------------------------


async def test_openai_reorders_by_index_and_normalises() -> None:
    remote = openai_embedder(fake_endpoint(64))
    expected = HashEmbedder(64).embed_sync(["alpha beta", "gamma"])
    np.testing.assert_allclose(await remote.embed(["alpha beta", "gamma"]), expected, atol=1e-6)
    await remote.aclose()


async def test_openai_batches_large_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, object]] = []
    remote = openai_embedder(fake_endpoint(16, seen), dimensions=16)
    texts = [f"document number {n}" for n in range(4100)]
    vectors = await remote.embed(texts)
    await remote.aclose()
    assert [len(body["input"]) for body in seen] == [2048, 2048, 4]  # type: ignore[arg-type]
    np.testing.assert_allclose(vectors[4099], HashEmbedder(16).embed_sync([texts[4099]])[0])
    assert all(body["model"] == "nomic-embed-text" for body in seen)
    assert all("dimensions" not in body for body in seen)


async def test_openai_asks_for_shortened_vectors_of_known_models() -> None:
    seen: list[dict[str, object]] = []
    remote = openai_embedder(fake_endpoint(256, seen), model="text-embedding-3-small",
                             dimensions=256)  # fmt: skip
    assert (await remote.embed(["x"])).shape == (1, 256)
    assert seen[0]["dimensions"] == 256
    assert seen[0]["encoding_format"] == "float"
    await remote.aclose()


async def test_openai_wrong_width_is_an_error() -> None:
    remote = openai_embedder(fake_endpoint(32), dimensions=64)
    with pytest.raises(EmbedderError, match="width 32"):
        await remote.embed(["a"])
    await remote.aclose()


async def test_openai_server_error_is_an_embedder_error() -> None:
    calls: list[int] = []

    def failing(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(400, json={"error": {"message": "bad model", "type": "x"}})

    remote = openai_embedder(failing, max_retries=2)
    with pytest.raises(EmbedderError, match="bad model"):
        await remote.embed(["a"])
    assert len(calls) == 1  # a 400 is not retried
    await remote.aclose()


def test_openai_unknown_model_needs_dimensions() -> None:
    with pytest.raises(EmbedderError, match="THREADLINE_EMBEDDINGS_DIMENSIONS"):
        OpenAIEmbedder(model="nomic-embed-text", base_url=None, api_key="k")
    known = OpenAIEmbedder(model="text-embedding-3-large", base_url=None, api_key="k")
    assert known.dimensions == 3072


# --- make_embedder -----------------------------------------------------------------------


def test_make_embedder_follows_settings() -> None:
    assert isinstance(make_embedder(Settings(embedder="local")), LocalEmbedder)
    hashing = make_embedder(Settings(embedder="hash", embeddings_dimensions=32))
    assert isinstance(hashing, HashEmbedder)
    assert hashing.dimensions == 32
    remote = make_embedder(
        Settings(
            embedder="openai",
            openai_base_url="http://127.0.0.1:9/v1",
            embeddings_model="bge-small",
            embeddings_dimensions=384,
        )
    )
    assert isinstance(remote, OpenAIEmbedder)
    assert (remote.dimensions, remote.model) == (384, "bge-small")


def test_make_embedder_local_threads() -> None:
    assert isinstance(default := make_embedder(Settings()), LocalEmbedder)
    assert default.threads == 1
    assert default.windows == 4
    assert isinstance(one := make_embedder(Settings(embeddings_windows=1)), LocalEmbedder)
    assert one.windows == 1
    uncapped = make_embedder(Settings(embeddings_threads=0))
    assert isinstance(uncapped, LocalEmbedder)
    assert uncapped.threads is None


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_EMBEDDER", "openai")
    monkeypatch.setenv("THREADLINE_EMBEDDINGS_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("THREADLINE_EMBEDDINGS_MODEL", "text-embedding-3-small")
    settings = Settings()
    assert settings.embedder == "openai"
    assert settings.embeddings_base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("THREADLINE_EMBEDDER", "torch")
    with pytest.raises(ValueError, match="embedder"):
        Settings()


# --- LocalEmbedder -------------------------------------------------------------------------


@pytest.mark.smoke
def test_local_caps_blas_threads_once_loaded(local_embedder: LocalEmbedder) -> None:
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas
    assert all(pool["num_threads"] == local_embedder.threads == 1 for pool in blas)


@pytest.mark.smoke
async def test_local_matches_the_published_similarities(local_embedder: LocalEmbedder) -> None:
    # sentence-transformers' documented example for all-MiniLM-L6-v2 (computed there
    # with PyTorch): similarities 0.6660, 0.1046 and 0.1411.
    vectors = await local_embedder.embed(TEXTS[:3])
    similarities = vectors @ vectors.T
    assert similarities[0, 1] == pytest.approx(0.6660, abs=2e-4)
    assert similarities[0, 2] == pytest.approx(0.1046, abs=2e-4)
    assert similarities[1, 2] == pytest.approx(0.1411, abs=2e-4)


@pytest.mark.smoke
async def test_local_ranks_a_paraphrase_above_unrelated_text(
    local_embedder: LocalEmbedder,
) -> None:
    query, paraphrase, unrelated, lexical_decoy = await local_embedder.embed(
        [
            "How do I get my money back for a broken item?",
            "Refunds are issued for defective products returned within 30 days.",
            "The observatory opens its telescope to visitors on clear nights.",
            "Item numbers are printed on the back of the box.",
        ]
    )
    assert float(query @ paraphrase) > float(query @ unrelated) + 0.2
    assert float(query @ paraphrase) > float(query @ lexical_decoy)


@pytest.mark.smoke
async def test_local_padding_does_not_change_vectors(local_embedder: LocalEmbedder) -> None:
    short = "Valve V2 must be closed before priming."
    alone = await local_embedder.embed([short])
    long_texts = [short, "A much longer sentence about pumps and valves. " * 30]
    together = await local_embedder.embed(long_texts)
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


@pytest.mark.smoke
async def test_local_reads_a_long_text_in_windows(local_embedder: LocalEmbedder) -> None:
    head = "Photosynthesis turns light into chemical energy in plant leaves. " * 30
    tail = "The goalkeeper saved a penalty in the last minute of the cup final. " * 25
    query = "who saved the penalty in the football final"
    windowed = await local_embedder.embed([head + tail, query])
    truncated = await LocalEmbedder(windows=1).embed([head + tail, query, head])
    # One window sees only the start: the football half is invisible.
    np.testing.assert_allclose(truncated[0], truncated[2], atol=1e-5)
    assert float(windowed[0] @ windowed[1]) > float(truncated[0] @ truncated[1]) + 0.1


@pytest.mark.smoke
async def test_local_window_vector_is_the_mean_over_all_tokens(
    local_embedder: LocalEmbedder,
) -> None:
    # Independent of the windowing code: two windows encoded one by one with the
    # encoder, their token means combined by length.
    tokenizer, encoder = local_embedder._loaded()
    text = "Valves, pumps and seals of the cooling loop need checks. " * 40
    pieces = tokenizer.encode(text, add_special_tokens=False).ids[: 254 * 2]
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    means, weights = [], []
    for start in (0, 254):
        window = np.array([[cls_id, *pieces[start : start + 254], sep_id]], dtype=np.int64)
        means.append(encoder.mean_pooled(window, np.ones_like(window))[0])
        weights.append(window.shape[1])
    expected = np.average(means, axis=0, weights=weights)
    expected /= np.linalg.norm(expected)
    two_windows = LocalEmbedder(windows=2)
    np.testing.assert_allclose((await two_windows.embed([text]))[0], expected, atol=1e-5)


def test_local_refuses_damaged_weights() -> None:
    wrong = dataclasses.replace(MINILM, files={"tokenizer.json": "0" * 64})
    with pytest.raises(EmbedderError, match="damaged"):
        wrong.verified_directory()
    missing = dataclasses.replace(MINILM, files={"nope.bin": "0" * 64})
    with pytest.raises(EmbedderError, match="missing"):
        missing.verified_directory()
    uninstalled = dataclasses.replace(MINILM, module="no_such_embedding_package")
    with pytest.raises(EmbedderError, match="not installed"):
        LocalEmbedder(uninstalled).load()
