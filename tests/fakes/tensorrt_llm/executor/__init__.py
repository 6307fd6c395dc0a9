"""FAKE tensorrt_llm.executor."""
