"""Training: one Trainer for pretraining and fine-tuning.

    config.py       TrainConfig, TrainState, Evaluation, FitSummary, Callback, NonFiniteLossError
    trainer.py      the Trainer: schedule, AMP, accumulation, DDP, the loop, eval, best weights
    batches.py      which items make which micro-batch of which step on which rank; device choice
    checkpoints.py  the checkpoint (exact resume) and best/ dirs, the run dir at the start
    evaluation.py   eval_fn's result as an Evaluation; the default mean loss over an eval dataset
    logs.py         the train log row
    optim.py        AdamW groups and the lr schedule
    rng.py          seeds derived from (seed, purpose, counter); every generator's state
    plots.py        metrics.jsonl → metrics.png
The run directory's file names and atomic writes live in :mod:`glassbert.runfiles`.
"""

from ..runfiles import BEST_DIR, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, MODEL_FILE, PLOT_FILE, STATE_FILE
from ..runfiles import read_jsonl as read_metrics
from .checkpoints import find_checkpoint
from .config import Callback, Evaluation, FitSummary, NonFiniteLossError, TrainConfig, TrainState
from .optim import build_optimizer, lr_factor
from .plots import plot_metrics
from .rng import derive_seed
from .trainer import Trainer

__all__ = [
    "Trainer", "TrainConfig", "TrainState", "Evaluation", "FitSummary", "Callback", "NonFiniteLossError",
    "find_checkpoint", "read_metrics", "plot_metrics", "derive_seed", "lr_factor", "build_optimizer",
    "BEST_DIR", "CHECKPOINT_DIR", "CONFIG_FILE", "METRICS_FILE", "MODEL_FILE", "PLOT_FILE", "STATE_FILE",
]
