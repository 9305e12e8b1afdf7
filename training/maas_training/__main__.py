"""`python -m maas_training ...` is `maas-train ...` (handy as an AWS Batch container command)."""

import sys

from maas_training.cli import main

sys.exit(main())
