"""FAKE tensorrt_llm._torch."""
