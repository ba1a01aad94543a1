"Shared pytest setup: no network, no W&B uploads, quiet tokenizers."
import os
for k, v in dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true",
                 TOKENIZERS_PARALLELISM="false").items():
    os.environ.setdefault(k, v)
