"""The card, driver and library versions of this machine, as one JSON object (bench/gpu_check.sh)."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys

import torch


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def nvidia_smi() -> str | None:
    query = "name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit"
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main() -> dict:
    cuda = torch.cuda.is_available()
    properties = torch.cuda.get_device_properties(0) if cuda else None
    versions = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "device_memory_gib": properties.total_memory / 2 ** 30 if properties else None,
        "multiprocessors": properties.multi_processor_count if properties else None,
        "nvidia_smi": nvidia_smi(),
        **{name: package_version(name) for name in
           ("transformers", "megatron-core", "transformer-engine", "flash-attn", "triton", "numpy", "medssr_nemo")},
    }
    print(json.dumps(versions))
    return versions


if __name__ == "__main__":
    main()
