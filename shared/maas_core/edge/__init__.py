"""The edge: what faces Lambda and API Gateway -- events, contexts, HTTP answers, the OpenAPI document.

The handlers under functions/ call it; the domain below it (maas_core's spec, store, registry,
predictor, batch core, monitoring) takes plain Python values and never sees an event or a context.
"""
