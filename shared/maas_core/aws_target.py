"""Which AWS a workstation command (`maas-train`, `maas`) talks to when nothing names an AWS target.

`make demo` keeps a moto server on 127.0.0.1:4566 holding the template's bucket and table. A command run
with `--local`, or on a machine with no AWS credentials, no AWS_ENDPOINT_URL and no --bucket, goes there:
the same code path as AWS, pointed at moto by the environment. Nothing here touches real AWS, and nothing
here imports moto (the training container has none).

It is in the core because the packages that need it may not import one another for it: the training
CLI (below the other two), the `maas` CLI and the local stack (maas_local.stack serves at this address).
No Lambda function uses it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

LOCAL_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_REGION = "us-east-1"  # the region maas_local.stack creates the template's resources in
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def reset_maas_caches() -> None:
    """Drop maas_core's cached boto3 clients and settings so they see a changed environment."""
    from maas_core import aws, settings  # boto3 only when used: `maas-train --help` does not load it

    aws.reset_clients()
    settings.get_settings.cache_clear()


class NoTargetError(ValueError):
    """Neither AWS nor a local stack is there to publish to."""


def has_aws_credentials() -> bool:
    import boto3  # boto3 finds env, profile, SSO, container and instance credentials alike

    return boto3.Session().get_credentials() is not None


def is_listening(endpoint: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def local_stack_env(endpoint: str) -> dict[str, str | None]:
    """The environment that sends every boto3 call to the moto server at `endpoint` (None: unset): a fixed
    region, moto's dummy credentials always (never real AWS), no profile to override them."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": LOCAL_REGION, "AWS_REGION": LOCAL_REGION,
            **FAKE_CREDENTIALS, "AWS_PROFILE": None, "AWS_DEFAULT_PROFILE": None}


def point_at_local_stack(endpoint: str) -> None:
    """Send every boto3 call of this process, for the rest of it, to the local stack."""
    for key, value in local_stack_env(endpoint).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_maas_caches()


def choose_target(local: str | None, *, bucket_given: bool, announce: Callable[[str], None]) -> str | None:
    """Apply `--local [URL]` or the local default; return the endpoint now in use, None for plain boto3 settings.

    The default applies only when nothing points at AWS: no AWS_ENDPOINT_URL, no --bucket, no credentials
    (a user who named a bucket without credentials gets boto3's own 'Unable to locate credentials').
    NoTargetError when the local stack is wanted but not running.
    """
    if local is None:
        if os.environ.get("AWS_ENDPOINT_URL") or bucket_given or has_aws_credentials():
            return None
        local, why = LOCAL_ENDPOINT, "no AWS credentials found, so "
    else:
        why = ""
    if not is_listening(local):
        raise NoTargetError(
            f"{why}the local stack was wanted at {local}, but nothing listens there: start it with `make demo` "
            "(it keeps serving), or configure AWS credentials (AWS_PROFILE, or aws configure) to use your account")
    point_at_local_stack(local)
    announce(f"{why}using the local stack at {local} (make demo's moto server)")
    return local
