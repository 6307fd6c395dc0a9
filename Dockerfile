# medssr_nemo on NVIDIA's TensorRT-LLM release image.
#
# Why this base: the rollout engine needs TensorRT-LLM (PyTorch backend, LLM API), which must
# match the image's CUDA, torch and NCCL builds exactly and has no PyPI wheel for them; the NGC
# TensorRT-LLM release image ships all of that, tested together. megatron-core (the training
# backend) is a pure-Python package that installs on top of that torch. The NeMo image is the
# other way round (Megatron and TransformerEngine, but no TensorRT-LLM), and TensorRT-LLM cannot be
# added to it without replacing its torch.
#
# The tag must match PINNED_VERSION in medssr_nemo/rollout/trtllm/api.py (a test checks).
ARG BASE_IMAGE=nvcr.io/nvidia/tensorrt-llm/release:1.2.0
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/medssr_nemo
COPY setup.py README.md ./
COPY medssr_nemo ./medssr_nemo
COPY plugins ./plugins
COPY conf ./conf

# One consistent dependency set: every package the base image holds (its torch, TensorRT-LLM,
# transformers 4.57.1, numpy 1.x, datasets 3.1.0, ...) becomes a constraint, so resolving the
# megatron and trtllm extras can never replace one of them; a requirement that cannot fit fails the
# build. scripts/check_image_deps.py checks the same against docker/tensorrt_llm-1.2.0-image.txt
# offline (tests/test_docker.py), so a conflict shows up before any build.
RUN pip list --format=freeze | grep -viE '^medssr[-_]nemo==' > /tmp/image-constraints.txt \
    && pip install --no-cache-dir -c /tmp/image-constraints.txt ".[megatron,trtllm]" \
    && python -c "import medssr_nemo, tensorrt_llm; print('medssr_nemo on tensorrt_llm', tensorrt_llm.__version__)"

# The data root (docs/data.md): mount it here (`docker run -v DIR:/workspace/data`; examples/slurm
# mount $MEDSSR_DATA); `medssr run` fetches into it whatever is missing.
ENV MEDSSR_DATA=/workspace/data

# Runs write under the mounted working directory (examples/slurm mount the submit dir here).
WORKDIR /workspace/run
CMD ["medssr", "--help"]
