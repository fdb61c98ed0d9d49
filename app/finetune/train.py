"""The training worker: `python -m app.finetune.train CONFIG.json`, run by `worker.py` in its
own process. Trains a LoRA adapter with peft on the base model (r=8, alpha 16 on q_proj and
v_proj, fp32, AdamW), the loss on the assistant's tokens only, each example rendered with the
model's own chat template (what serving renders). Saves the adapter with `save_pretrained`.

It talks to the service on stdout, one JSON object a line: `{"message": ...}` for progress
and, per optimizer step, `{"step", "total_steps", "loss", "tokens_per_s", "eta_s",
"tokens"}` (`tokens`: trained so far). A failure is a traceback on stderr and a non-zero exit.

The config: model, training_file, output_dir, n_epochs, batch_size, learning_rate, seed. The
torch threads come from STREAMCHAT_TRAIN_THREADS (set by the worker)."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from app.finetune.dataset import Message, examples

MAX_TOKENS = 1024  # per example: longer ones are cut (chat examples here are short)
IGNORE = -100  # the label torch's cross-entropy skips


def say(**line: Any) -> None:
    print(json.dumps(line), flush=True)


def encode(tokenizer: Any, messages: list[Message]) -> tuple[list[int], list[int]]:
    """(input ids, labels): the example as the chat template renders it, labelled on the
    assistant turns only (each turn's text and its end-of-turn token: where to stop)."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False,
                                               add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[:i + 1], tokenize=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            # A template that re-renders earlier turns: learn the last answer only.
            prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False,
                                                   add_generation_prompt=True)
            full = tokenizer.apply_chat_template(messages, tokenize=False)
            pieces, done = [], ""
            pieces += [(prompt, False), (full[len(prompt):], True)]
            break
        pieces += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return ids[:MAX_TOKENS], labels[:MAX_TOKENS]


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(int(os.environ.get("STREAMCHAT_TRAIN_THREADS", "1")))
    torch.manual_seed(config["seed"])
    say(message=f"Loading the base model ({torch.get_num_threads()} threads)")
    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    base = AutoModelForCausalLM.from_pretrained(config["model"], dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                            target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    data = [encode(tokenizer, ex) for ex in examples(Path(config["training_file"]).read_bytes())]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch_size, epochs = config["batch_size"], config["n_epochs"]
    total = epochs * math.ceil(len(data) / batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=config["learning_rate"])
    say(message=f"Training on {len(data)} examples: {total} steps")
    model.train()
    order, rng = list(range(len(data))), random.Random(config["seed"])
    step = tokens = 0
    started = time.monotonic()
    for _ in range(epochs):
        rng.shuffle(order)
        for first in range(0, len(order), batch_size):
            batch = [data[i] for i in order[first:first + batch_size]]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            began = time.monotonic()
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            counted = int(mask.sum())
            tokens += counted
            elapsed = time.monotonic() - started
            say(step=step, total_steps=total, loss=round(loss.item(), 6),
                tokens_per_s=round(counted / max(time.monotonic() - began, 1e-9), 1),
                eta_s=round(elapsed / step * (total - step), 1), tokens=tokens)
    output = Path(config["output_dir"])
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    os.replace(staging, output)  # whole or absent: never half an adapter
    say(message=f"Saved the adapter ({tokens} tokens trained in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m app.finetune.train CONFIG.json")
    main(sys.argv[1])
