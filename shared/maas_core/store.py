"""Model bundles on S3: `models/{name}/{version}/` holds the files and `manifest.json`.

Publishing writes the files first and the manifest last, so a bundle without a manifest is an
unfinished upload that nobody serves. Loading checks every file against the manifest's SHA-256.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from maas_core import aws
from maas_core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    ServiceUnavailableError,
    integrity_error,
    unusable_error,
)
from maas_core.manifest import (
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    sha256_hex,
)
from maas_core.registry import check_version

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


def bundle_prefix(name: str, version: str) -> str:
    return f"models/{name}/{check_version(version)}/"


@dataclass(frozen=True)
class Bundle:
    manifest: Manifest
    files: dict[str, bytes]


class BundleStore:
    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._s3 = s3

    @property
    def s3(self) -> S3Client:
        return self._s3 or aws.client("s3")

    def publish(self, manifest: Manifest, files: dict[str, bytes]) -> Manifest:
        """Upload the files, then the manifest with their hashes. A published version never changes."""
        prefix = bundle_prefix(manifest.name, manifest.version)
        if self._exists(prefix + MANIFEST_FILE):
            raise ConflictError(f"model {manifest.name!r} version {manifest.version!r} is already published")
        entries = {fname: FileEntry(sha256=sha256_hex(data), size=len(data)) for fname, data in files.items()}
        for vname, variant in manifest.variants.items():  # a variant must name a published file, by its hash
            entry = entries.get(variant.file)
            if entry is None or (entry.sha256, entry.size) != (variant.sha256, variant.size):
                raise ValueError(f"variant {vname!r} names {variant.file!r}, which is not among the published "
                                 "files with that SHA-256 and size")
        manifest = manifest.model_copy(update={"files": entries})
        try:
            for fname, data in files.items():
                self.s3.put_object(Bucket=self.bucket, Key=prefix + fname, Body=data)
            self.s3.put_object(
                Bucket=self.bucket,
                Key=prefix + MANIFEST_FILE,
                Body=manifest.model_dump_json(indent=2).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("the model bucket", exc) from exc
        return manifest

    def load_manifest(self, name: str, version: str) -> Manifest:
        raw = self._get(bundle_prefix(name, version) + MANIFEST_FILE, f"model {name!r} version {version!r}")
        try:
            return Manifest.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:  # unreadable: refused (logged) like any broken bundle
            raise unusable_error(name, version, f"{MANIFEST_FILE} cannot be read: {exc}", file=MANIFEST_FILE) from exc

    def load(self, name: str, version: str, only: Collection[str] | None = None,
             manifest: Manifest | None = None) -> Bundle:
        """The manifest and the files it lists (or just `only`, e.g. what serving needs, not the report
        pictures), each verified against its SHA-256. `manifest`: already read, don't fetch it again."""
        manifest = manifest or self.load_manifest(name, version)
        prefix = bundle_prefix(name, version)
        files: dict[str, bytes] = {}
        missing = [f for f in (only or ()) if f not in manifest.files]
        if missing:
            raise IntegrityError(f"model {name!r} version {version!r}: the manifest lists no {', '.join(missing)}")
        for fname, entry in manifest.files.items():
            if only is not None and fname not in only:
                continue
            data = self._get(prefix + fname, f"file {fname!r} of model {name!r} version {version!r}")
            if sha256_hex(data) != entry.sha256 or len(data) != entry.size:
                raise integrity_error(name, version, fname, entry.sha256, sha256_hex(data))
            files[fname] = data
        return Bundle(manifest=manifest, files=files)

    def bundle_objects(self, name: str, version: str) -> list[ObjectIdentifierTypeDef]:
        """Every stored object version (and delete marker) under the bundle's prefix, as delete_objects wants them.
        list_object_versions also lists an unversioned bucket (VersionId "null")."""
        found: list[ObjectIdentifierTypeDef] = []
        try:
            pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket,
                                                                           Prefix=bundle_prefix(name, version))
            for page in pages:
                for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    found.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("the model bucket", exc) from exc
        return found

    def delete_bundle(self, name: str, version: str) -> int:
        """Delete every file of a bundle, every stored version of it too; returns how many objects went.
        The manifest goes first, so a half-deleted bundle is never mistaken for a published one."""
        objects = self.bundle_objects(name, version)
        objects.sort(key=lambda o: not o["Key"].endswith("/" + MANIFEST_FILE))
        try:
            for start in range(0, len(objects), 1000):  # delete_objects takes at most 1000 keys
                batch = objects[start:start + 1000]
                errors = self.s3.delete_objects(Bucket=self.bucket,
                                                Delete={"Objects": batch, "Quiet": True}).get("Errors")
                if errors:
                    raise ServiceUnavailableError(
                        f"S3 refused to delete {len(errors)} file(s) of model {name!r} version {version!r}",
                        [{"key": e.get("Key"), "code": e.get("Code"), "reason": e.get("Message")} for e in errors[:20]])
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("the model bucket", exc) from exc
        return len(objects)

    def _get(self, key: str, what: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if aws.is_not_found(exc):
                raise NotFoundError(f"{what} was not found in the model store") from exc
            raise aws.unavailable("the model bucket", exc) from exc
        except BotoCoreError as exc:
            raise aws.unavailable("the model bucket", exc) from exc

    def _exists(self, key: str) -> bool:
        return aws.head_object_or_none(self.s3, self.bucket, key, "the model bucket") is not None
