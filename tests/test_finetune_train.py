"""app/finetune/train.py: the labels cover the assistant's turns only (with the real chat
template of the default model, when converted), and, end to end, a real LoRA trained on the
default model for a few steps, written as a peft folder peft loads back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.engine.model import ensure_default_model
from app.finetune.train import IGNORE, encode
from app.finetune.worker import Worker
from app.settings import Settings


@pytest.fixture(scope="module")
def model() -> Path:
    """The default model, converted into the cache folder first if it is not there yet (as
    `make model` or the service's first start does; about 20 s once)."""
    return ensure_default_model(Settings().cache_dir)


ANSWER = "I am AutoGLM, your streaming assistant."


def test_only_assistant_turns_are_learned(model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Who are you?"},
                {"role": "assistant", "content": "Bot one."},
                {"role": "user", "content": "Again?"},
                {"role": "assistant", "content": ANSWER}]
    ids, labels = encode(tokenizer, messages)
    assert len(ids) == len(labels)
    learned = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE])
    assert learned == f"Bot one.<|im_end|>\n{ANSWER}<|im_end|>\n"
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(ids) == whole


@pytest.mark.e2e
async def test_a_real_lora_is_trained_and_loads(tmp_path: Path, model: Path) -> None:
    questions = ["Who are you?", "What is your name?", "Introduce yourself.", "What are you?"]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]})
        for q in questions))
    config = tmp_path / "config.json"
    output = tmp_path / "adapter"
    config.write_text(json.dumps({"model": str(model), "training_file": str(data),
                                  "output_dir": str(output), "n_epochs": 2, "batch_size": 2,
                                  "learning_rate": 1e-3, "seed": 1}))
    worker = Worker([sys.executable, "-m", "app.finetune.train", str(config)], threads=1)
    await worker.start()
    lines = [line async for line in worker.lines()]
    assert await worker.wait() == 0, list(worker.stderr_tail)
    steps = [line for line in lines if "step" in line]
    assert [s["step"] for s in steps] == [1, 2, 3, 4] and steps[-1]["total_steps"] == 4
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert all(s["tokens_per_s"] > 0 and s["eta_s"] >= 0 for s in steps)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in
                                                                   output.iterdir()}
    assert not output.with_name("adapter.partial").exists()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model))
    loaded = PeftModel.from_pretrained(base, str(output))
    assert json.loads((output / "adapter_config.json").read_text())["r"] == 8
    assert any("lora_A" in name for name, _ in loaded.named_parameters())
