"""The re-decode as the paper's evaluation script does it: the rendered prompt text and its token
ids for a Qwen3-format and a Llama-3-format tokenizer, the number of new tokens, the allowed token
ids and how the output is read.

The two tokenizers are built locally (``make_tiny_tokenizer``; no hub here): a byte-level BPE of a
few hundred tokens trained on a small corpus, not Qwen3's or Llama 3's vocabulary, with each family's
special tokens, BOS rule (Llama 3 prepends ``<|begin_of_text|>``, Qwen3 none) and a reduced copy
of its chat template (system/user/assistant turns; Qwen3's drops an earlier turn's ``<think>``
block). Token ids are therefore checked against this vocabulary, not the real models' ids.

Expected texts are written out by hand from the script's rule. On main before this change the
re-decode continued the assistant turn with ``"\\nThe answer is "`` and one token for every model,
so these tests fail there.
"""

from __future__ import annotations

import pytest

from medssr_nemo.eval.redecode import Redecoder, make_redecoder, redecode_new_tokens
from medssr_nemo.models.tiny import make_tiny_tokenizer
from medssr_nemo.records import QuestionRecord

RECORD = QuestionRecord(id="q1", question="Which enzyme is deficient?", options=["one", "two", "three", "four"], gold="B")
QUESTION = "Which enzyme is deficient?\nA. one\nB. two\nC. three\nD. four"
SYSTEM = "Please think step by step and output the final answer as 'The answer is [LETTER]'."
BASE_EXPECTED = (
    "You are a professional medical expert answering a multiple-choice medical question.\n"
    "Please think step by step and then provide exactly one final option.\n"
    "Format the final answer as: The answer is [LETTER].\n\n"
    f"Question:\n{QUESTION}\n\n"
    "I think it is two.\nRespond with one option only.\nThe answer is "
)
QWEN3_CHAT_EXPECTED = (
    f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
    "<|im_start|>assistant\nI think it is two<|im_end|>\n"
    "<|im_start|>user\nRespond with one option only. The answer is <|im_end|>\n<|im_start|>assistant\n"
)
LLAMA3_CHAT_EXPECTED = (   # Llama 3's template trims each message, so the turn loses its last space
    f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
    f"<|start_header_id|>user<|end_header_id|>\n\n{QUESTION}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nI think it is two<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nRespond with one option only. The answer is<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


@pytest.fixture(scope="module")
def qwen3():
    return make_tiny_tokenizer("qwen3")


@pytest.fixture(scope="module")
def llama3():
    return make_tiny_tokenizer("llama3")


def test_base_prompt_appends_a_full_stop_and_the_instruction(qwen3):
    redecoder = make_redecoder(qwen3, "base", "Qwen/Qwen3-8B-Base", "qwen3")
    assert redecoder.prompt_text(RECORD, "  I think it is two \n") == BASE_EXPECTED
    # an answer that already ends with a full stop gets none added
    assert redecoder.prompt_text(RECORD, "I think it is two.") == BASE_EXPECTED


def test_qwen3_chat_prompt_is_a_new_user_turn_after_the_completion(qwen3):
    redecoder = make_redecoder(qwen3, "chat", "Qwen/Qwen3-8B", "qwen3")
    assert redecoder.prompt_text(RECORD, "I think it is two\n") == QWEN3_CHAT_EXPECTED
    # Qwen3's template drops the thinking of an earlier assistant turn
    assert redecoder.prompt_text(RECORD, "<think>\nlong\n</think>\n\nI think it is two") == QWEN3_CHAT_EXPECTED


def test_llama3_chat_prompt_is_a_new_user_turn_after_the_completion(llama3):
    redecoder = make_redecoder(llama3, "chat", "meta-llama/Llama-3.1-8B-Instruct", "llama")
    assert redecoder.prompt_text(RECORD, "I think it is two") == LLAMA3_CHAT_EXPECTED


def test_token_ids_qwen3(qwen3):
    base = make_redecoder(qwen3, "base", "Qwen/Qwen3-8B-Base", "qwen3")
    chat = make_redecoder(qwen3, "chat", "Qwen/Qwen3-8B", "qwen3")
    assert base.prompt_ids(RECORD, "I think it is two") == qwen3(BASE_EXPECTED, add_special_tokens=False)["input_ids"]
    chat_ids = chat.prompt_ids(RECORD, "I think it is two")
    assert chat_ids == qwen3(QWEN3_CHAT_EXPECTED, add_special_tokens=False)["input_ids"]
    assert chat_ids.count(qwen3.convert_tokens_to_ids("<|im_start|>")) == 5
    assert qwen3.decode(chat_ids) == QWEN3_CHAT_EXPECTED


def test_token_ids_llama3_have_exactly_one_bos(llama3):
    bos = llama3.bos_token_id
    base = make_redecoder(llama3, "base", "meta-llama/Llama-3.1-8B", "llama")
    chat = make_redecoder(llama3, "chat", "meta-llama/Llama-3.1-8B-Instruct", "llama")
    base_ids = base.prompt_ids(RECORD, "I think it is two")
    assert base_ids == [bos, *llama3(BASE_EXPECTED, add_special_tokens=False)["input_ids"]]
    chat_ids = chat.prompt_ids(RECORD, "I think it is two")
    assert chat_ids == llama3(LLAMA3_CHAT_EXPECTED, add_special_tokens=False)["input_ids"]
    assert chat_ids.count(bos) == 1 and chat_ids[0] == bos


def test_one_new_token_for_qwen_models_two_for_others():
    assert redecode_new_tokens("Qwen/Qwen3-8B-Base", None) == 1
    assert redecode_new_tokens("runs/x/stage1/hf_model", "qwen3") == 1
    assert redecode_new_tokens("Qwen/Qwen2.5-7B-Instruct", "qwen2") == 1
    assert redecode_new_tokens("meta-llama/Llama-3.1-8B-Instruct", "llama") == 2
    assert redecode_new_tokens("mistralai/Mistral-7B-v0.1", "mistral") == 2


def test_allowed_ids_are_the_benchmarks_letters_plus_letter_dot_for_llama(qwen3, llama3):
    letters = ["A", "B", "C", "D"]
    qwen = make_redecoder(qwen3, "chat", "Qwen/Qwen3-8B", "qwen3")
    assert qwen.sampling(letters).max_new_tokens == 1 and qwen.sampling(letters).temperature == 0.0
    assert set(qwen.allowed_ids(letters)) == {qwen3.convert_tokens_to_ids(L) for L in letters}
    llama = make_redecoder(llama3, "chat", "meta-llama/Llama-3.1-8B-Instruct", "llama")
    dot = llama3.encode(".", add_special_tokens=False)
    assert llama.sampling(letters).max_new_tokens == 2
    assert set(llama.allowed_ids(letters)) == {llama3.convert_tokens_to_ids(L) for L in letters} | set(dot)
    assert llama3.bos_token_id not in llama.allowed_ids(letters)
    mistral = make_redecoder(llama3, "chat", "mistralai/Mistral-7B-Instruct", "mistral")
    assert set(mistral.allowed_ids(letters)) == {llama3.convert_tokens_to_ids(L) for L in letters}


@pytest.mark.parametrize("text, expected", [
    ("B", "B"), ("B.", "B"), (" b", "B"), ("A.", "A"), ("AB", None), ("E", None), ("", None), (".", None),
])
def test_the_redecoded_text_is_read_as_the_script_normalises_it(text, expected):
    assert Redecoder.read(text, ["A", "B", "C", "D"]) == expected


def test_a_letter_of_several_tokens_is_a_clear_error(qwen3):
    redecoder = make_redecoder(qwen3, "chat", "Qwen/Qwen3-8B", "qwen3")
    with pytest.raises(ValueError, match="option letter 'AB' is 2 tokens"):
        redecoder.allowed_ids(["AB"])
