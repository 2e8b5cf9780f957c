"""Export: torch → ONNX graphs (per codec stage and end to end) and ONNX → TensorRT engines; builds artifacts, runs nothing."""
