"""A stand-in for `python -m app.finetune.train` in fast tests: speaks its stdout protocol
(JSON lines: a message, one line per step) and writes an adapter folder, without a model.
FAKE_TRAIN_STEPS, FAKE_TRAIN_DELAY (seconds per step) and FAKE_TRAIN_FAIL shape a run."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    steps = int(os.environ.get("FAKE_TRAIN_STEPS", "3"))
    delay = float(os.environ.get("FAKE_TRAIN_DELAY", "0"))
    print(json.dumps({"message": f"fake training, lr {config['learning_rate']}"}), flush=True)
    print("not JSON: ignored", flush=True)
    if os.environ.get("FAKE_TRAIN_FAIL"):
        sys.exit("RuntimeError: out of memory")
    for step in range(1, steps + 1):
        time.sleep(delay)
        print(json.dumps({"step": step, "total_steps": steps, "loss": 1.0 / step,
                          "tokens_per_s": 100.0, "eta_s": (steps - step) * delay,
                          "tokens": step * 10}), flush=True)
    output = Path(config["output_dir"])
    output.mkdir(parents=True)
    (output / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))


if __name__ == "__main__":
    main(sys.argv[1])
