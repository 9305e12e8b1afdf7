"""Work moved into Lambda's init phase when init is not on a caller's clock (template ColdStartMode).

With provisioned concurrency (AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency) Lambda initialises
environments ahead of requests, and with SnapStart (snap-start) it snapshots an initialised environment
and restores it for new ones. Either way, what init already did is not paid by the first request: so in
those modes init also creates the boto3 clients the first request needs (~0.3 s of a cold start).
On-demand environments (`on-demand`, or not on Lambda) skip this: init is on the caller's clock there.

SnapStart restores many environments from one snapshot, so anything unique made before the snapshot
would be shared: `random`'s state is reseeded after each restore (canary routing without a routing key
draws from it; prediction ids use the `secrets` module, which reads the OS at each call). Connections the
clients opened before the snapshot may be stale after a restore; botocore reconnects and retries.
"""

from __future__ import annotations

import os
import random
from typing import Literal

PRIMED_INIT_TYPES = frozenset({"provisioned-concurrency", "snap-start"})


def prime(services: tuple[Literal["dynamodb", "s3"], ...] = ("dynamodb", "s3")) -> bool:
    """Create the clients now if init is off the request path; True if it did."""
    # Lambda's runtime sets this variable, not the stack (no MAAS_ prefix): it is not a setting, so not in Settings
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") not in PRIMED_INIT_TYPES:
        return False
    from maas_core import aws

    for service in services:
        aws.client(service)
    try:  # the Lambda Python runtime's SnapStart hooks (python3.12+); absent elsewhere
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return True
    register_after_restore(reseed)
    return True


def reseed() -> None:
    random.seed()  # fresh OS entropy: restored environments must not share one random sequence
