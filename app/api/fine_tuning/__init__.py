"""OpenAI's fine-tuning API over app/finetune/: the Files API for datasets (files.py) and the
jobs (fine_tuning.py), served only with STREAMCHAT_FINE_TUNING=true (manager.py)."""

from app.api.fine_tuning import files, fine_tuning

routes = [*files.routes, *fine_tuning.routes]
