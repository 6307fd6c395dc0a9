"""FAKE of tensorrt_llm/_torch/utils.py: device UUIDs of pretend GPUs."""


def get_device_uuid(device_idx: int) -> str:
    return f"GPU-FAKE-{int(device_idx):04d}"
