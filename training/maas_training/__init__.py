"""maas training job: dataset -> Keras model -> ONNX -> published, registered bundle. TensorFlow lives here only."""
