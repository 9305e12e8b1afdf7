"""Loaded model versions, kept per process: the first request for a version pays for S3 and the
onnxruntime session, later warm invocations reuse them. Bounded LRU; only verified bundles enter.

Sessions are cached by content: the SHA-256 the manifest records for the variant's model file. Two
versions (or models) whose model files have identical bytes share one InferenceSession (memory, and
the session build). Each version's files are still fetched and checked against its manifest before it
is served, so a tampered file is refused (never cached), even when an intact twin is loaded already.
Only the requested variant's model file is fetched.

A version that passes its hashes must also be able to answer (maas_core.load_checks: a spec that fits
its graph, finite fitted values, a finite smoke run on the training baseline) and be self-contained (no
ONNX external data, checked before onnxruntime sees the bytes: maas_core.onnx_external). Otherwise it
is refused with ModelLoadError, the reason logged, and never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from maas_core.errors import MaasError, NotFoundError, unusable_error
from maas_core.feeds import graph_feeds
from maas_core.load_checks import UnusableBundle, check_model, check_spec
from maas_core.manifest import DEFAULT_VARIANT, PREPROCESS_FILE, Manifest
from maas_core.onnx_external import external_tensors
from maas_core.ort_options import session_options
from maas_core.preprocess import PreprocessSpec
from maas_core.store import Bundle, BundleStore


def new_session(model_bytes: bytes) -> ort.InferenceSession:
    # threads from MAAS_ORT_THREADS / os.cpu_count() (maas_core.ort_options)
    return ort.InferenceSession(model_bytes, session_options(), providers=["CPUExecutionProvider"])


@dataclass
class LoadedModel:
    manifest: Manifest
    spec: PreprocessSpec
    session: ort.InferenceSession
    variant: str = DEFAULT_VARIANT

    @classmethod
    def from_bundle(cls, bundle: Bundle, variant: str = DEFAULT_VARIANT,
                    session: ort.InferenceSession | None = None) -> LoadedModel:
        """`session`: an already loaded session for the variant's (hash-identical) model file."""
        m = bundle.manifest
        file = variant_file(m, variant)
        try:
            spec = PreprocessSpec.from_json(bundle.files[PREPROCESS_FILE])
            check_spec(spec)  # before anything is sized by it
            # the manifest's input schema has the last word on which fields are personal data
            spec = spec.with_sensitive({f.name for f in m.input_schema if f.sensitive})
            if session is None:
                session = new_session(self_contained(bundle.files[file]))
            model = cls(manifest=m, spec=spec, session=session, variant=variant)
            check_model(model)
        except Exception as exc:  # a bundle that passed its hashes but still cannot load is broken, not a caller error
            reason = exc.message if isinstance(exc, MaasError) else str(exc) or type(exc).__name__
            raise unusable_error(m.name, m.version, reason, variant=variant, file=file,
                                 error=type(exc).__name__) from exc
        return model

    def run(self, features: np.ndarray) -> np.ndarray:
        out = self.session.run([self.manifest.model_output.name], graph_feeds(self.manifest, features))
        return np.asarray(out[0])


def self_contained(model_bytes: bytes) -> bytes:
    """The model's bytes, unless a tensor of it lives in another file (ONNX external data): onnxruntime would
    read that file, from outside the hash-checked bundle (maas_core.onnx_external)."""
    external = external_tensors(model_bytes)
    if external:
        raise UnusableBundle(f"{len(external)} tensor(s) are stored as ONNX external data, in files outside the "
                             "bundle: " + ", ".join(f"{n!r} in {loc!r}" for n, loc in external[:5]))
    return model_bytes


def variant_file(manifest: Manifest, variant: str) -> str:
    """The variant's model file; 404 naming the model, version and the variants it has when it has none."""
    fname = manifest.variant_file(variant)
    if fname is None:
        have = ", ".join(manifest.variant_names())
        raise NotFoundError(f"model {manifest.name!r} version {manifest.version!r} has no {variant!r} variant "
                            f"(it has: {have})",
                            [{"field": "variant", "value": variant, "available": manifest.variant_names()}])
    return fname


class ModelCache:
    """`max_size` (MAAS_MODEL_CACHE_SIZE) bounds both the versions kept and the distinct sessions."""

    def __init__(self, max_size: int = 8) -> None:
        self.max_size = max_size
        self._models: OrderedDict[tuple[str, str, str], LoadedModel] = OrderedDict()  # (name, version, variant)
        self._sessions: OrderedDict[str, ort.InferenceSession] = OrderedDict()  # model file SHA-256 -> session
        self._lock = threading.Lock()

    def get(self, name: str, version: str, store: BundleStore, variant: str = DEFAULT_VARIANT) -> LoadedModel:
        key = (name, version, variant)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            manifest = self._known_manifest(name, version)  # versions are immutable: no second manifest GET
        manifest = manifest or store.load_manifest(name, version)
        fname = variant_file(manifest, variant)
        # the file is fetched and hash-checked even when its session is cached: a tampered copy is refused,
        # never masked by an intact twin (store.load refuses a file the manifest does not list)
        bundle = store.load(name, version, only=[fname, PREPROCESS_FILE], manifest=manifest)
        sha256 = manifest.files[fname].sha256
        with self._lock:
            session = self._sessions.get(sha256)
        model = LoadedModel.from_bundle(bundle, variant, session)  # raises before caching if the bundle is bad
        with self._lock:
            self._sessions[sha256] = model.session
            self._sessions.move_to_end(sha256)
            self._models[key] = model
            while len(self._models) > self.max_size:
                self._models.popitem(last=False)
            while len(self._sessions) > self.max_size:
                _, evicted = self._sessions.popitem(last=False)
                # versions still holding the evicted session go too, so one file never has two sessions
                for k in [k for k, m in self._models.items() if m.session is evicted]:
                    del self._models[k]
        return model

    def _known_manifest(self, name: str, version: str) -> Manifest | None:
        for (n, v, _), model in self._models.items():
            if (n, v) == (name, version):
                return model.manifest
        return None

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def __contains__(self, key: tuple[str, ...]) -> bool:
        """(name, version): any variant of it is loaded; (name, version, variant): that one is."""
        if len(key) == 3:
            return key in self._models
        return any(k[:2] == tuple(key) for k in self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._sessions.clear()
