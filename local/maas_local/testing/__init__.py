"""What the tests and the benchmarks both need to drive the handlers in this process, below both of them
(benchmarks never import tests/): API Gateway events (events), the registry's table in moto
(registry_table), bundles published as the training job publishes them (bundles), and two tiny but real
ONNX models built with onnx.helper, no TensorFlow (tiny_model, text_model; onnx comes with the `training`
and `dev` extras). The Lambda context and the loader of functions/<name>/app.py are the local gateway's
own: maas_local.lambda_context.FakeLambdaContext and maas_local.lambda_runtime.load_function.

Dev-only code: never shipped to Lambda.
"""
