"""Fine-tuning jobs: datasets (files), jobs run by a worker process that trains a LoRA adapter
with peft, their events, and the adapters handed to serving once a job succeeds."""
