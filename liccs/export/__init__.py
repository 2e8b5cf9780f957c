"""Export: torch → ONNX graphs (per codec stage and end to end), ONNX → int8/fp16 ONNX, torch → AOTInductor
package, ONNX → TensorRT engine; builds cached artifacts, runs nothing.

- :mod:`.graphs` — what is exported (:class:`GraphSpec`: stages, ``reconstruct``, ``liccs``, classifier).
- :mod:`.inference` — GDN / MaskedConv2d / LowerBound in inference form.
- :mod:`.onnx` — :class:`OnnxFromTorch` (dynamo exporter, TorchScript fallback), :func:`load_onnx`.
- :mod:`.quantize` — :class:`Int8OnnxFromOnnx` (static QDQ), :class:`Fp16OnnxFromOnnx`.
- :mod:`.aoti` — :class:`AotiFromTorch`.
- :mod:`.cache` — :class:`ArtifactCache` (keyed, atomic).
- :mod:`.report` — :func:`export_codec` and the export report.
- :mod:`.tensorrt` — ``EngineFromOnnx`` (TensorRT).

Submodules are imported on use, so that ``import liccs.export.tensorrt`` stays light.
"""
