"""Build a megatron-core GPTModel with the architecture of a Hugging Face Llama/Qwen2/Qwen3 config.

``ArchSpec`` is the small, framework-neutral description both directions of the weight mapping
(``conversion.py``) and the model builder read, so the two cannot disagree about shapes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")
# Megatron pads the vocabulary to a multiple of this times TP (its own default) so that every
# tensor-parallel rank holds an equal, nicely aligned slice of the embedding and output layer.
DEFAULT_VOCAB_MULTIPLE = 128


@dataclass(frozen=True)
class ArchSpec:
    """What the HF<->Megatron mapping needs to know about one decoder-only model."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_query_groups: int          # key/value heads (GQA)
    head_dim: int
    ffn_hidden_size: int
    vocab_size: int                # the tokenizer's (HF) vocabulary
    padded_vocab_size: int         # what the Megatron embedding holds (>= vocab_size)
    tied_embeddings: bool
    qkv_bias: bool                 # Qwen2
    qk_norm: bool                  # Qwen3
    norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    llama3_rope_factor: float | None = None  # Llama 3.1 frequency scaling

    @property
    def heads_per_group(self) -> int:
        return self.num_attention_heads // self.num_query_groups


def padded_vocab_size(vocab_size: int, tensor_parallel_size: int, multiple: int = DEFAULT_VOCAB_MULTIPLE) -> int:
    """Smallest size >= ``vocab_size`` divisible by ``multiple * tensor_parallel_size``."""
    step = multiple * tensor_parallel_size
    return -(-vocab_size // step) * step


def _rope(hf_config: Any) -> tuple[float, float | None]:
    """(theta, llama3 factor or None) from a transformers 5 ``rope_parameters`` or 4.x config."""
    params = dict(getattr(hf_config, "rope_parameters", None) or {})
    if not params:  # transformers 4.x layout
        params = dict(getattr(hf_config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    rope_type = params.get("rope_type", params.get("type", "default"))
    theta = float(params.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0)))
    if rope_type in (None, "default"):
        return theta, None
    if rope_type == "llama3":
        # megatron-core hard-codes Llama 3.1's low/high frequency factors and original length.
        expected = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        for key, value in expected.items():
            if float(params.get(key, value)) != value:
                raise ValueError(f"rope_parameters.{key}={params[key]} is not supported by megatron-core "
                                 f"(it implements Llama 3.1's {key}={value} only)")
        return theta, float(params.get("factor", 8.0))
    raise ValueError(f"rope type {rope_type!r} is not supported by the megatron backend; "
                     f"supported: default, llama3")


def arch_spec_from_hf(hf_config: Any, tensor_parallel_size: int = 1,
                      vocab_multiple: int = DEFAULT_VOCAB_MULTIPLE) -> ArchSpec:
    """Read a transformers config; raise a clear error for anything the mapping does not cover."""
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"model_type {model_type!r} is not supported by the megatron backend; "
                         f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    if getattr(hf_config, "hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act={hf_config.hidden_act!r}: only SwiGLU (silu) MLPs are supported")
    if getattr(hf_config, "use_sliding_window", False):
        raise ValueError("use_sliding_window=True is not supported by the megatron backend")
    if getattr(hf_config, "mlp_bias", False):
        raise ValueError("mlp_bias=True is not supported by the megatron backend")
    attention_bias = bool(getattr(hf_config, "attention_bias", False))
    if model_type in ("llama", "qwen3") and attention_bias:
        raise ValueError(f"{model_type} with attention_bias=True (a bias on o_proj too) is not supported")
    heads = hf_config.num_attention_heads
    groups = getattr(hf_config, "num_key_value_heads", None) or heads
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads
    for name, count in (("num_attention_heads", heads), ("num_key_value_heads", groups)):
        if count % tensor_parallel_size:
            raise ValueError(f"{name}={count} is not divisible by tensor_parallel_size={tensor_parallel_size}")
    if hf_config.intermediate_size % tensor_parallel_size:
        raise ValueError(f"intermediate_size={hf_config.intermediate_size} is not divisible by "
                         f"tensor_parallel_size={tensor_parallel_size}")
    theta, llama3_factor = _rope(hf_config)
    return ArchSpec(
        model_type=model_type,
        num_layers=hf_config.num_hidden_layers,
        hidden_size=hf_config.hidden_size,
        num_attention_heads=heads,
        num_query_groups=groups,
        head_dim=head_dim,
        ffn_hidden_size=hf_config.intermediate_size,
        vocab_size=hf_config.vocab_size,
        padded_vocab_size=padded_vocab_size(hf_config.vocab_size, tensor_parallel_size, vocab_multiple),
        tied_embeddings=bool(getattr(hf_config, "tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2",  # Qwen2: bias on q/k/v, none on o_proj
        qk_norm=model_type == "qwen3",
        norm_eps=float(hf_config.rms_norm_eps),
        rope_theta=theta,
        max_position_embeddings=hf_config.max_position_embeddings,
        llama3_rope_factor=llama3_factor,
    )


def transformer_engine_available() -> bool:
    """TE layer specs need both the library and a CUDA device."""
    return torch.cuda.is_available() and importlib.util.find_spec("transformer_engine") is not None


def transformer_config(arch: ArchSpec, *, tensor_parallel_size: int, pipeline_parallel_size: int,
                       bf16: bool, recompute_activations: bool = False, **overrides: Any):
    """The megatron-core ``TransformerConfig`` equivalent to ``arch``.

    Fusions that need CUDA kernels are off unless ``overrides`` turn them on (``speed.py`` does
    on a GPU with TransformerEngine); dropout is off (GRPO on a pretrained policy).
    ``recompute_activations`` keeps only each layer's input and recomputes the layer in the
    backward pass (``policy.gradient_checkpointing``).
    ``calculate_per_token_loss`` tells the pipeline schedules not to divide the loss by the
    number of micro-batches and the DDP wrapper not to average over data-parallel ranks: our loss
    is already divided by the global token count, so micro-batch losses and gradients add up.
    """
    import torch.nn.functional as F
    from megatron.core.transformer import TransformerConfig

    dtype = torch.bfloat16 if bf16 else torch.float32
    overrides = {"bias_dropout_fusion": False, "bias_activation_fusion": False, "apply_rope_fusion": False,
                 "masked_softmax_fusion": False, "gradient_accumulation_fusion": False, **overrides}
    if recompute_activations:
        overrides = {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1,
                     **overrides}
    return TransformerConfig(
        num_layers=arch.num_layers,
        hidden_size=arch.hidden_size,
        num_attention_heads=arch.num_attention_heads,
        num_query_groups=arch.num_query_groups,
        kv_channels=arch.head_dim,
        ffn_hidden_size=arch.ffn_hidden_size,
        normalization="RMSNorm",
        layernorm_epsilon=arch.norm_eps,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=arch.qkv_bias,
        qk_layernorm=arch.qk_norm,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        persist_layer_norm=False,
        tensor_model_parallel_size=tensor_parallel_size,
        pipeline_model_parallel_size=pipeline_parallel_size,
        # Micro-batches are trimmed to their own longest sequence, so shapes vary between them;
        # the MoE dispatcher setting only silences a check that concerns MoE models.
        variable_seq_lengths=pipeline_parallel_size > 1,
        moe_token_dispatcher_type="alltoall",
        calculate_per_token_loss=True,
        params_dtype=dtype,
        pipeline_dtype=dtype,
        bf16=bf16,
        use_cpu_initialization=not torch.cuda.is_available(),
        **overrides,
    )


def layer_spec(arch: ArchSpec, use_transformer_engine: bool | None = None):
    """TransformerEngine layer spec when TE is usable, megatron-core's local spec otherwise."""
    from megatron.core.models.gpt.gpt_layer_specs import (
        get_gpt_layer_local_spec,
        get_gpt_layer_with_transformer_engine_spec,
    )

    if use_transformer_engine is None:
        use_transformer_engine = transformer_engine_available()
    if use_transformer_engine:
        return get_gpt_layer_with_transformer_engine_spec(qk_layernorm=arch.qk_norm)
    return get_gpt_layer_local_spec(qk_layernorm=arch.qk_norm, normalization="RMSNorm")


def build_gpt_model(arch: ArchSpec, config, *, use_transformer_engine: bool | None = None):
    """This rank's pipeline stage of the GPTModel (weights still random: load them next)."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    return GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(arch, use_transformer_engine),
        vocab_size=arch.padded_vocab_size,
        max_sequence_length=arch.max_position_embeddings,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=arch.tied_embeddings,
        position_embedding_type="rope",
        rotary_base=arch.rope_theta,
        rope_scaling=arch.llama3_rope_factor is not None,
        rope_scaling_factor=arch.llama3_rope_factor or 8.0,
        parallel_output=True,  # logits stay split over the vocabulary; see logprobs.py
    )
