"""maas serving core: model bundles on S3, the registry on DynamoDB, preprocessing and inference.

Knows nothing of Lambda events; the handlers under functions/ wire events to it.
Imports only numpy, onnxruntime, boto3 and pydantic (no TensorFlow, ever).
"""

__version__ = "0.1.0"
