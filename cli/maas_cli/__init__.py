"""`maas`: the developer CLI for the model lifecycle (list, inspect, train, register, promote, canary,
roll back, delete) against the model bucket and registry of a local moto stack or a real account."""
