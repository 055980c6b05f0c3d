"""Training: one Trainer for pretraining and fine-tuning.

The modules, each importing only those listed above it:

    rng.py          seeds derived from (seed, purpose, counter); every generator's state
    logs.py         the train log row
    optim.py        AdamW groups and the lr schedule
    plots.py        metrics.jsonl → metrics.png
    distributed.py  the rank and device under torchrun; barrier and sum over the ranks
    config.py       TrainConfig, TrainState, Evaluation, FitSummary
    batches.py      which items make which micro-batch of which step on which rank
    checkpoints.py  the checkpoint (exact resume) and best/ dirs, the run dir at the start
    evaluation.py   eval_fn's result as an Evaluation; metrics_fn's values; the mean loss over an eval dataset
    trainer.py      the Trainer and its Callback hooks: schedule, precision, accumulation, DDP, the loop, best weights

The run directory's file names and atomic writes live in :mod:`glassbert.runfiles`.
"""

from ..errors import NonFiniteLossError
from ..runfiles import BEST_DIR, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, MODEL_FILE, PLOT_FILE, STATE_FILE
from ..runfiles import read_jsonl as read_metrics
from .checkpoints import find_checkpoint
from .config import Evaluation, FitSummary, TrainConfig, TrainState
from .optim import build_optimizer, lr_factor
from .plots import plot_metrics
from .rng import derive_seed
from .trainer import Callback, Trainer

__all__ = [
    "Trainer", "TrainConfig", "TrainState", "Evaluation", "FitSummary", "Callback", "NonFiniteLossError",
    "find_checkpoint", "read_metrics", "plot_metrics", "derive_seed", "lr_factor", "build_optimizer",
    "BEST_DIR", "CHECKPOINT_DIR", "CONFIG_FILE", "METRICS_FILE", "MODEL_FILE", "PLOT_FILE", "STATE_FILE",
]
