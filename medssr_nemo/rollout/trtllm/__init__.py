"""TensorRT-LLM rollout engine: version pin and capability probing (``api``), the engine
(``engine``), the weight-refit protocol (``refit``, ``buckets``, ``packing``, ``checksum``) and the
code that runs inside TensorRT-LLM's workers (``worker_extension``, imported only there).

Importing this package does not import TensorRT-LLM."""

from medssr_nemo.rollout.trtllm.api import NGC_IMAGE, PINNED_VERSION, TensorRTLLMUnavailable
from medssr_nemo.rollout.trtllm.options import TrtllmOptions
from medssr_nemo.rollout.trtllm.refit import StaleWeightsError

__all__ = ["NGC_IMAGE", "PINNED_VERSION", "StaleWeightsError", "TensorRTLLMUnavailable", "TrtllmOptions"]
