"""Write an S3 object so that a reader sees all of it or nothing of it.

    with AtomicS3Writer(s3, bucket, key, metadata={...}) as out:
        out.write(b"...")          # buffered; every `part_size` bytes become one multipart part
        out.commit()               # the object appears now, whole
    # an exception before commit() aborts the upload: no object, no half file, no leftover parts

Small outputs (below one part) are written with a single put_object at commit; larger ones with a
multipart upload that is completed only at commit and aborted on failure. Metadata known only at the
end (`commit(metadata=...)`, e.g. row counts) goes into the put; a multipart upload fixed its metadata
when it began, so the completed object is then copied onto itself with the full metadata (server-side,
before the commit returns; if that fails the object is deleted, so nothing appears without it). S3 wants every part but
the last to be at least 5 MiB; the default part is 8 MiB, so memory stays near one part however
large the object grows.

`append_object(key, size)` appends another object of the bucket (a shard's output, when the Distributed Map
path assembles a file): copied server-side (UploadPartCopy) as whole parts, so a large object is never read
back; only what S3's part rules cannot take as a part of its own is read into the buffer (an object smaller
than two parts arriving while the buffer holds bytes, or the head of a larger one topping the buffer up to
a part, or one smaller than a part): less than two parts per object.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, cast

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_COPY_PART = 5 * 1024**3  # S3's largest part

logger = Logger(child=True)


class AtomicS3Writer:
    def __init__(self, s3: Any, bucket: str, key: str, *, part_size: int = DEFAULT_PART_SIZE,
                 content_type: str = "application/octet-stream", metadata: dict[str, str] | None = None) -> None:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.part_size = part_size  # S3 needs >= 5 MiB; smaller only against a test double
        self.content_type = content_type
        self.metadata = dict(metadata or {})
        self.bytes_written = 0
        self.copied_bytes = 0  # of them, copied server-side by append_object
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    @property
    def multipart(self) -> bool:
        return self._upload_id is not None

    @property
    def parts(self) -> int:
        return len(self._parts)

    def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError(f"s3://{self.bucket}/{self.key} is already committed or aborted")
        self._buf += data
        self.bytes_written += len(data)
        if len(self._buf) >= self.part_size:
            self._upload_part()

    def commit(self, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Make the object visible, whole, with `metadata` added to the writer's. Returns S3's answer
        (ETag, VersionId...) of the put or of the completed upload."""
        if self._done:
            raise ValueError(f"s3://{self.bucket}/{self.key} is already committed or aborted")
        final = {**self.metadata, **(metadata or {})}
        try:
            if self._upload_id is None:
                body, self._buf = self._buf, bytearray()
                resp = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                          ContentType=self.content_type, Metadata=final)
            else:
                if self._buf:
                    self._upload_part()
                resp = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                                         MultipartUpload={"Parts": self._parts})
        except BaseException:
            self.abort()
            raise
        self._done = True
        if self._upload_id is not None and final != self.metadata:
            self._replace_metadata(final)
        return cast("dict[str, Any]", resp)

    def _replace_metadata(self, metadata: dict[str, str]) -> None:
        """Copy the completed object onto itself with `metadata` (boto3's managed copy: multipart past 8 MB,
        any size); on failure delete it, best effort, and raise."""
        source = {"Bucket": self.bucket, "Key": self.key}
        try:
            self.s3.copy(source, self.bucket, self.key, ExtraArgs={
                "Metadata": metadata, "MetadataDirective": "REPLACE", "ContentType": self.content_type})
        except BaseException:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=self.key)
            except (ClientError, BotoCoreError):
                logger.warning("could not delete the object after its metadata copy failed",
                               extra={"bucket": self.bucket, "key": self.key}, exc_info=True)
            raise

    def abort(self) -> None:
        """Drop everything written so far (idempotent; never raises: it runs while handling an error)."""
        if self._done:
            return
        self._done = True
        self._buf = bytearray()
        if self._upload_id is not None:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            except (ClientError, BotoCoreError):  # a lifecycle rule cleans up what we could not
                logger.warning("could not abort multipart upload",
                               extra={"upload_id": self._upload_id, "bucket": self.bucket, "key": self.key},
                               exc_info=True)

    def append_object(self, key: str, size: int) -> None:
        """Append the bytes of s3://{bucket}/{key} (`size` of them), copied server-side where S3 allows."""
        if self._done:
            raise ValueError(f"s3://{self.bucket}/{self.key} is already committed or aborted")
        start = 0
        if self._buf:
            if len(self._buf) + size < 2 * self.part_size:  # small: read it into the buffer
                self.write(self._read(key, 0, size))
                return
            start = self.part_size - len(self._buf)  # top the buffer up to one part (write() sends it)
            self.write(self._read(key, 0, start))
        if size - start < self.part_size:  # a part of its own would be too small (unless last: cannot know)
            self.write(self._read(key, start, size - start))
            return
        while start < size:
            end = min(size, start + MAX_COPY_PART)
            if 0 < size - end < self.part_size:  # never leave a tail too small to be a part
                end = size - self.part_size
            self._copy_part(key, start, end)
            start = end

    def _read(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            resp = self.s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
            return cast("bytes", resp["Body"].read())
        except BaseException:
            self.abort()
            raise

    def _copy_part(self, key: str, start: int, end: int) -> None:
        try:
            number = len(self._parts) + 1
            resp = self.s3.upload_part_copy(Bucket=self.bucket, Key=self.key, UploadId=self._ensure_upload(),
                                            PartNumber=number, CopySource={"Bucket": self.bucket, "Key": key},
                                            CopySourceRange=f"bytes={start}-{end - 1}")
        except BaseException:
            self.abort()
            raise
        self.bytes_written += end - start
        self.copied_bytes += end - start
        self._parts.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})

    def _ensure_upload(self) -> str:
        if self._upload_id is None:
            self._upload_id = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type, Metadata=self.metadata,
            )["UploadId"]
        return self._upload_id

    def _upload_part(self) -> None:
        try:
            upload_id = self._ensure_upload()
            number = len(self._parts) + 1
            body, self._buf = self._buf, bytearray()
            etag = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                                       PartNumber=number, Body=body)["ETag"]
        except BaseException:
            self.abort()
            raise
        self._parts.append({"PartNumber": number, "ETag": etag})

    def __enter__(self) -> AtomicS3Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done:  # an error, or a caller that never committed: nothing may appear
            self.abort()
