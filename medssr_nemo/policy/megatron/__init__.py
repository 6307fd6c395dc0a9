"""The ``megatron`` policy backend: megatron-core GPTModel with tensor, pipeline and data
parallelism, Hugging Face weights in and out.

Modules, one job each: ``model`` (GPTModel from an HF config), ``conversion`` (HF<->Megatron
tensor maths), ``weights`` (loading/exporting a parallel model), ``logprobs`` (vocabulary-parallel
log-softmax), ``parallel`` (layout, batch gathering), ``checkpoint`` (dist_checkpointing, HF
export), ``backend`` (the PolicyBackend), ``cpu_compat`` (running megatron-core without CUDA).
Importing this package does not import megatron-core.
"""
