"""Loaded model versions, kept per process: the first request for a version pays for S3 and the
onnxruntime session, later warm invocations reuse them. Bounded LRU; only verified bundles enter."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from maas_core.errors import ModelLoadError
from maas_core.manifest import MODEL_FILE, PREPROCESS_FILE, Manifest
from maas_core.preprocess import PreprocessSpec
from maas_core.store import Bundle


@dataclass
class LoadedModel:
    manifest: Manifest
    spec: PreprocessSpec
    session: ort.InferenceSession

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> "LoadedModel":
        m = bundle.manifest
        try:
            spec = PreprocessSpec.from_json(bundle.files[PREPROCESS_FILE])
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(bundle.files[MODEL_FILE], options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a bundle that passed its hashes but still cannot load is broken, not a caller error
            raise ModelLoadError(f"model {m.name!r} version {m.version!r} could not be loaded: {exc}") from exc
        return cls(manifest=m, spec=spec, session=session)

    def run(self, features: np.ndarray) -> np.ndarray:
        inp = self.manifest.model_input
        out = self.session.run([self.manifest.model_output.name], {inp.name: features.astype(inp.dtype, copy=False)})
        return np.asarray(out[0])


class ModelCache:
    def __init__(self, max_size: int = 8) -> None:
        self.max_size = max_size
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: str, load: Callable[[], Bundle]) -> LoadedModel:
        key = (name, version)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = LoadedModel.from_bundle(load())  # raises before caching if the bundle is bad
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.max_size:
                self._models.popitem(last=False)
        return model

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._models

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
