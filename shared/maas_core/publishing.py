"""How a model version comes to exist: reserve its number, publish its bundle, register it, promote it.

The one path for both makers of versions, the training job (maas_training.job) and the registration of
external ONNX models (maas_core.registration, `maas register`):

    manifest = publish_version(store, registry, "penguins", lambda version: (manifest_for(version), files),
                               promote="prod")

Callers check everything first (the model trained and passed its parity check; the external graph matched
its declaration), so nothing is written before the model is known to be good and a refused model burns no
version number. Then, in this order, each write a condition of the next:

1. the version number is reserved (the registry's atomic counter; creates the model on first use);
2. the bundle for that number is built and published: the files, then the manifest with their hashes
   (maas_core.store: a bundle without a manifest is an unfinished upload nobody serves);
3. the version is registered (a conditional put: written once, never changed);
4. the alias, if any, is pointed at it (a conditional, transactional alias move).

A failure half-way stops there and leaves what a reader can tell apart: a burned number (1), an unserved
upload (2), a published bundle the registry does not list (3), or a registered version that no alias names
(4). Nothing already written is undone, and no later step runs.
"""

from __future__ import annotations

from collections.abc import Callable

from maas_core.manifest import Manifest
from maas_core.registry import Registry, check_name
from maas_core.store import BundleStore, bundle_prefix

# the manifest (its version set) and the bundle's files, built for a reserved version number
BundleForVersion = Callable[[str], tuple[Manifest, dict[str, bytes]]]
Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def publish_version(store: BundleStore, registry: Registry, name: str, bundle: BundleForVersion,
                    promote: str | None = None, progress: Progress = _quiet) -> Manifest:
    """Reserve the next version of `name`, publish `bundle(version)`, register it and point `promote` at it;
    returns the published manifest (with its files' hashes). `progress` hears of each write done."""
    if promote is not None:  # a bad alias is refused before any write, not after the version exists
        check_name("alias", promote)
    version = registry.next_version(name)  # checks the model name before it writes
    manifest, files = bundle(version)
    published = store.publish(manifest, files)
    registry.register(published)
    progress(f"published {name} version {version} to s3://{store.bucket}/{bundle_prefix(name, version)}")
    if promote:
        registry.set_alias(name, promote, version)
        progress(f"alias {promote!r} of {name} -> version {version}")
    return published
