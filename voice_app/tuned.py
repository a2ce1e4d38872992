"""The tuned encoder: the sentence model's top layers fine-tuned on a question's labelled answers,
with a linear head that reads each dimension from the whole answer.

The learned judge (voice_app/learned.py) reads vectors of all-MiniLM-L6-v2 as it was published:
vectors made to tell topics apart, not "we shipped it" from "it cut waiting times by half".
scripts/train_encoder.py fine-tunes the model's layers on the corpus (with torch, offline) and
writes them with the head to a safetensors file beside the rules file, named by `[learned]
tuned`. Here they are read, checked and run with the app's own numpy encoder
(voice_app/embedding.py): the tuned layers replace the published ones from the first tuned layer
on, and the head turns the unit-length whole-answer vector, times `scale`, into one log-odds per
dimension. The judge mixes them into its own (`learned.TUNED_SHARE`).

File layout: the tuned layers under their names in the published model
(`encoder.layer.N.attention.self.query.weight`, ...), stored the way the numpy encoder multiplies
(x @ W), float16; `head.weight` (one row per dimension) and `head.bias`, float32; metadata:
`format`, `dimensions` (comma-separated, the head's rows), `scale`, `trained_on`, and
`fingerprint`, a checksum of the published model's word embeddings that says which model the
layers were tuned from (another model's lower layers would feed them nonsense).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voice_app.embedding import CachedEncoder, Encoder, MiniLMEncoder
from voice_app.errors import EmbeddingModelNotFound, RulesError

FORMAT = "1"
TRAIN = "scripts/train_encoder.py"
# The weights of one BERT layer, by their names under encoder.layer.N.
LAYER_KEYS = tuple(
    f"{part}.{kind}"
    for part in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    )
    for kind in ("weight", "bias")
)
_FINGERPRINT_ROWS = 1000
_FINGERPRINT_TOLERANCE = 1e-3


def fingerprint(model: MiniLMEncoder) -> float:
    """A checksum of the model's word embeddings (the first rows, summed): equal for the same
    published model wherever it is installed, different for any other."""
    rows = model.weights["embeddings.word_embeddings.weight"][:_FINGERPRINT_ROWS]
    return round(float(np.asarray(rows, dtype=np.float64).sum()), 4)


class TunedHead:
    """The tuned layers and head of one question, as read from their file."""

    def __init__(
        self,
        path: Path,
        layers: Mapping[str, npt.NDArray[np.float32]],
        weight: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        dimensions: Sequence[str],
        scale: float,
        trained_on: str,
        model_fingerprint: float,
    ) -> None:
        self.path = path
        self.layers = dict(layers)
        self.weight = weight
        self.bias = bias
        self.dimensions = tuple(dimensions)
        self.scale = scale
        self.trained_on = trained_on
        self.fingerprint = model_fingerprint
        self._encoders: dict[int, tuple[MiniLMEncoder, CachedEncoder]] = {}
        self._lock = threading.Lock()

    def fits(self, encoder: Encoder) -> bool:
        """Whether the encoder is the numpy model these layers can run on (test stand-ins are
        not); raises EmbeddingModelNotFound when it is a real model but another one than the
        layers were tuned from."""
        base = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
        if not isinstance(base, MiniLMEncoder):
            return False
        self._tuned(base)
        return True

    def log_odds(self, encoder: Encoder, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """One row per text (a whole answer, normalised as `interviewer.normalize` does), one
        column per dimension of `dimensions`. `encoder` must fit (`fits`)."""
        base = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
        assert isinstance(base, MiniLMEncoder), "check TunedHead.fits first"
        vectors = self._tuned(base).encode(texts).astype(np.float64)
        z: npt.NDArray[np.float64] = (vectors * self.scale) @ self.weight.T.astype(
            np.float64
        ) + self.bias
        return z

    def _tuned(self, base: MiniLMEncoder) -> CachedEncoder:
        """The base model with the tuned layers in place (made once per base model), cached."""
        with self._lock:
            known = self._encoders.get(id(base))
            if known is not None and known[0] is base:
                return known[1]
            if abs(fingerprint(base) - self.fingerprint) > _FINGERPRINT_TOLERANCE:
                raise EmbeddingModelNotFound(
                    f"{self.path} was tuned from another sentence model than the one in "
                    f"{base.model_dir}: point VOICE_APP_EMBEDDING_MODEL at "
                    f"all-MiniLM-L6-v2 as published (or unset it), or retrain with {TRAIN}"
                )
            for key, value in self.layers.items():
                mine = base.weights.get(key)
                if mine is None or mine.shape != value.shape:
                    raise EmbeddingModelNotFound(
                        f"{self.path}: {key} does not fit the sentence model in "
                        f"{base.model_dir}: retrain with {TRAIN}"
                    )
            tuned = CachedEncoder(base.with_weights(self.layers))
            self._encoders[id(base)] = (base, tuned)
            return tuned


def save(
    path: Path,
    layers: Mapping[str, npt.NDArray[Any]],
    weight: npt.NDArray[Any],
    bias: npt.NDArray[Any],
    dimensions: Sequence[str],
    scale: float,
    trained_on: str,
    model_fingerprint: float,
) -> None:
    """Write tuned layers (as float16) and a head (float32) in the layout `load` reads."""
    from safetensors.numpy import save_file

    tensors = {key: np.ascontiguousarray(value, dtype=np.float16) for key, value in layers.items()}
    tensors["head.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
    tensors["head.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    metadata = {
        "format": FORMAT,
        "dimensions": ",".join(dimensions),
        "scale": repr(float(scale)),
        "trained_on": trained_on,
        "fingerprint": repr(float(model_fingerprint)),
    }
    save_file(tensors, str(path), metadata=metadata)


def load(path: Path, dimension_names: Collection[str]) -> TunedHead:
    """Read and check a tuned file; raises RulesError naming the file and the key at fault."""
    from safetensors import SafetensorError, safe_open

    where = str(path)
    if not path.is_file():
        raise RulesError(where, "(file)", f"does not exist: make it with {TRAIN}")
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError, ValueError) as error:
        raise RulesError(
            where, "(file)", f"cannot be read ({error}): remake it ({TRAIN})"
        ) from None
    if metadata.get("format") != FORMAT:
        raise RulesError(where, "format", f"must be {FORMAT}: retrain with {TRAIN}")
    dimensions = [name for name in metadata.get("dimensions", "").split(",") if name]
    unknown = [name for name in dimensions if name not in dimension_names]
    if not dimensions or unknown:
        raise RulesError(
            where, "dimensions", f"must name dimensions of the question ({', '.join(unknown)})"
        )
    numbers: dict[str, float] = {}
    for key in ("scale", "fingerprint"):
        try:
            numbers[key] = float(metadata.get(key, ""))
        except ValueError:
            raise RulesError(where, key, f"must be a number: retrain with {TRAIN}") from None
    if not numbers["scale"] > 0:
        raise RulesError(where, "scale", "must be above 0")
    weight, bias = tensors.pop("head.weight", None), tensors.pop("head.bias", None)
    if weight is None or weight.ndim != 2 or weight.shape[0] != len(dimensions):
        raise RulesError(where, "head.weight", f"must have one row per dimension ({TRAIN})")
    if bias is None or bias.shape != (len(dimensions),):
        raise RulesError(where, "head.bias", f"must have one number per dimension ({TRAIN})")
    layers = sorted({int(key.split(".")[2]) for key in tensors if key.startswith("encoder.layer.")})
    for key in tensors:
        if not key.startswith("encoder.layer.") or key.split(".", 3)[3] not in LAYER_KEYS:
            raise RulesError(where, key, "is not a weight of a BERT layer")
    for layer in layers:
        for part in LAYER_KEYS:
            if f"encoder.layer.{layer}.{part}" not in tensors:
                raise RulesError(where, f"encoder.layer.{layer}.{part}", "is missing")
    if not layers:
        raise RulesError(where, "encoder.layer", f"holds no tuned layer ({TRAIN})")
    width = tensors[f"encoder.layer.{layers[-1]}.output.LayerNorm.weight"].shape[0]
    if weight.shape[1] != width:
        raise RulesError(where, "head.weight", f"must read vectors of {width} numbers")
    return TunedHead(
        path,
        {key: value.astype(np.float32) for key, value in tensors.items()},
        weight.astype(np.float32),
        bias.astype(np.float32),
        dimensions,
        numbers["scale"],
        metadata.get("trained_on", ""),
        numbers["fingerprint"],
    )
