"""OpenAI's API and vLLM's extensions of it: chat and text completions (openai.py), resumable
chat completion streams (resumable.py), `/v1/models` and the tokenizer (models.py), LoRA
adapters (lora.py); the request models (schemas.py and what it declares with: messages.py,
tools.py, structured.py) and the response shapes (format.py, with tool_calls.py,
tool_parser.py and reasoning.py reading a reply)."""

from app.api.openai import lora, models, openai, resumable

routes = [*openai.routes, *models.routes, *resumable.routes, *lora.routes]
