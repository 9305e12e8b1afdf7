"""Local development only (never shipped to Lambda): moto-backed stack, a gateway that
serves template.yaml, the demo."""
