"""The fake TensorRT-LLM in tests/fakes against the committed snapshot of the real 1.2 API
(tests/contracts/tensorrt_llm_1_2.json, written from TensorRT-LLM's own source), and the
behaviours of the real source the plugin depends on: class composition of the worker extension,
the restricted unpickler's keyword per version, the weight hooks and the device id of IPC handles,
and logprobs without the sampled token."""

from __future__ import annotations

import base64
import math
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from trtllm_contract import contract_problems, load_snapshot

FAKES = Path(__file__).parent / "fakes"


def _drop_trtllm_modules():
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")
                 or m == "medssr_nemo.rollout.trtllm.worker_extension"]:
        sys.modules.pop(name, None)


@pytest.fixture()
def fake_from(monkeypatch):
    """Import ``tensorrt_llm`` from a given fakes directory (the committed one or an altered copy)."""
    def use(directory: Path):
        _drop_trtllm_modules()
        monkeypatch.syspath_prepend(str(directory))
        import tensorrt_llm

        return tensorrt_llm

    yield use
    _drop_trtllm_modules()


def test_fake_matches_the_1_2_contract_snapshot(fake_from):
    fake_from(FAKES)
    assert contract_problems() == []


def test_snapshot_names_the_release_and_a_source_file_for_every_entry():
    snapshot = load_snapshot()
    assert snapshot["release"] == "1.2.0" and "commit" in snapshot["how_read"]
    entries = snapshot["signatures"] + snapshot["placement"] + snapshot["fields"]
    for entry in entries:
        sources = [v["source"] for v in entry["one_of"]] if "one_of" in entry else [entry["source"]]
        assert all(s["file"].startswith("tensorrt_llm/") for s in sources), entry


def _altered_copy(tmp_path: Path, relative: str, old: str, new: str) -> Path:
    copy = tmp_path / "fakes"
    shutil.copytree(FAKES, copy)
    target = copy / "tensorrt_llm" / relative
    text = target.read_text()
    assert old in text, f"{old!r} not in {relative}"
    target.write_text(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize("relative, old, new, expected", [
    ("llmapi/rlhf_utils.py", "def update_weights(self, ipc_handles: Optional[dict] = None)",
     "def update_weights(self, handles: Optional[dict] = None)", "WorkerExtension.update_weights: signature"),
    ("llmapi/llm.py", "non_block: bool = False", "non_block: bool = True", "LLM._collective_rpc: signature"),
    ("executor/ray_gpu_worker.py", "    @control_action_decorator\n    def sleep", "    def sleep",
     "RayGPUWorker.sleep: not wrapped by"),
    ("llmapi/rlhf_utils.py", "    def reset_prefix_cache(self) -> None:",
     "    def sleep(self, sleep_tags):\n        pass\n\n    def reset_prefix_cache(self) -> None:",
     "WorkerExtension should not define sleep"),
    ("sampling_params.py", "    logprobs: Optional[int] = None", "    logprobs: Optional[int] = 0",
     "SamplingParams.logprobs defaults to 0"),
    ("serialization.py", "buffers: Any = None, disallowed_imports: dict | None = None",
     "buffers: Any = None, denied: dict | None = None", "serialization.loads: signature"),
    ("llmapi/llm_args.py", '{ExecutorMemoryType.KV_CACHE: "NONE"}', '{ExecutorMemoryType.KV_CACHE: "CPU"}',
     "SleepConfig.DEFAULT_RESTORE_MODES is {'kv_cache': 'CPU'}"),
    ("llmapi/llm_args.py", 'RESTORE_MODE_NAMES = ("NONE", "MEMSET", "CPU", "PINNED")',
     'RESTORE_MODE_NAMES = ("NONE", "CPU", "PINNED")', "SleepConfig(restore_modes={'model': 'CPU', 'kv_cache': 'MEMSET'}) refused"),
    ("llmapi/llm_args.py", "            try:\n                tag = ExecutorMemoryType(key)",
     "            try:\n                tag = key", "SleepConfig(restore_modes={'not_a_tag': 'CPU'}) accepted"),
])
def test_contract_check_fails_when_a_copy_of_the_fake_drifts(tmp_path, fake_from, relative, old, new, expected):
    fake_from(_altered_copy(tmp_path, relative, old, new))
    problems = contract_problems()
    assert any(expected in p for p in problems), problems


# ---------------------------------------------------------------- behaviours the plugin relies on
def test_extension_attribute_clashing_with_the_worker_class_is_refused(fake_from):
    fake_from(FAKES)
    from tensorrt_llm.executor.ray_gpu_worker import RayGPUWorker, RayWorkerWrapper

    composed = RayWorkerWrapper._inject_worker_extension(
        RayGPUWorker, "medssr_nemo.rollout.trtllm.worker_extension.MedSSRWorkerExtension")
    assert issubclass(composed, RayGPUWorker) and hasattr(composed, "medssr_finish_refit")
    sys.modules["medssr_clash_ext"] = type(sys)("medssr_clash_ext")
    sys.modules["medssr_clash_ext"].Ext = type("Ext", (), {"sleep": lambda self, tags: None})
    try:
        with pytest.raises(ValueError, match="already defines 'sleep'"):
            RayWorkerWrapper._inject_worker_extension(RayGPUWorker, "medssr_clash_ext.Ext")
    finally:
        del sys.modules["medssr_clash_ext"]


def test_our_extension_defines_nothing_the_worker_class_has(fake_from):
    fake_from(FAKES)
    from tensorrt_llm.executor.ray_gpu_worker import RayGPUWorker

    from medssr_nemo.rollout.trtllm.worker_extension import MedSSRWorkerExtension

    ours = {a for a in vars(MedSSRWorkerExtension) if not a.startswith("__")}
    assert ours and all(a.startswith(("medssr_", "_medssr_")) or a == "update_weights" for a in ours)
    assert not {a for a in dir(MedSSRWorkerExtension) if not a.startswith("__") and hasattr(RayGPUWorker, a)}


@pytest.mark.parametrize("variant", ["loads_allowlist", "loads_denylist"])
def test_restricted_unpickler_gets_the_keyword_its_version_takes(fake_from, monkeypatch, variant):
    trtllm = fake_from(FAKES)
    from tensorrt_llm import serialization
    from tensorrt_llm._fake_ipc import byte_handle

    from medssr_nemo.rollout.trtllm import worker_extension

    monkeypatch.setattr(serialization, "loads", getattr(serialization, variant))
    monkeypatch.setitem(worker_extension.HANDLE_IMPORTS, "tensorrt_llm._fake_ipc", ["rebuild_cuda_tensor"])
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    payload = base64.b64encode(pickle.dumps([("w", byte_handle(tensor))])).decode()
    [(name, (func, args))] = worker_extension._decode_handles(payload)
    assert name == "w" and func.__name__ == "rebuild_cuda_tensor"
    from torch.storage import _load_from_bytes

    for evil in (_load_from_bytes, os.system, torch.save):   # refused by the allow- and the deny-list
        payload = base64.b64encode(pickle.dumps([("w", (evil, ()))])).decode()
        with pytest.raises(ValueError, match="is not allowed"):
            worker_extension._decode_handles(payload)
    assert trtllm.__version__ == "1.2.0"


def test_unpickler_without_a_known_keyword_is_a_clear_error(fake_from, monkeypatch):
    fake_from(FAKES)
    from tensorrt_llm import serialization

    from medssr_nemo.rollout.trtllm.worker_extension import restricted_loads

    monkeypatch.setattr(serialization, "loads", lambda s, /, *, safe=True: None)
    with pytest.raises(TypeError, match="neither approved_imports nor disallowed_imports"):
        restricted_loads(b"")


def test_update_weights_writes_the_worker_device_into_argument_six(fake_from):
    fake_from(FAKES)
    from tensorrt_llm import _fake_ipc

    handle = _fake_ipc.byte_handle(torch.ones(3))
    assert handle[1][6] is None and len(handle[1]) == 15
    with pytest.raises(TypeError, match="storage_device"):
        _fake_ipc.rebuild_cuda_tensor(*handle[1][:6], None, *handle[1][7:])


def test_sampled_token_missing_from_logprobs_becomes_nan():
    from medssr_nemo.rollout.trtllm.engine import _sampled_logprobs

    class Logprob:
        def __init__(self, value):
            self.logprob = value

    values = _sampled_logprobs([{5: Logprob(-0.1)}, {7: Logprob(-0.2), 9: Logprob(-3.0)}], [5, 9])
    assert values == [-0.1, -3.0]
    values = _sampled_logprobs([{5: Logprob(-0.1)}, {7: Logprob(-0.2)}], [5, 9])
    assert values[0] == -0.1 and math.isnan(values[1])
