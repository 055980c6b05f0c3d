"""glassbert: BERT (and ALBERT) from scratch in PyTorch, as a glass box."""
from .capture import Capture
from .config import AlbertConfig, BertConfig
from .heads import (BertForMaskedLM, BertForNextSentencePrediction, BertForPreTraining,
                    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification)
from .albert import (AlbertForMaskedLM, AlbertForPreTraining, AlbertForQuestionAnswering,  # after .heads
                     AlbertForSequenceClassification, AlbertForTokenClassification, AlbertModel)
from .model import BertModel, BertModelOutput
from .registry import ARCHITECTURES, load_as, load_model
from .tokenizer import Batch, Tokenizer

__version__ = "0.1.0"

__all__ = ["BertConfig", "Tokenizer", "Batch", "BertModel", "BertModelOutput", "BertForPreTraining",
           "BertForMaskedLM", "BertForNextSentencePrediction", "BertForSequenceClassification",
           "BertForTokenClassification", "BertForQuestionAnswering", "Capture", "Embedder",
           "AlbertConfig", "AlbertModel", "AlbertForPreTraining", "AlbertForMaskedLM",
           "AlbertForSequenceClassification", "AlbertForTokenClassification", "AlbertForQuestionAnswering",
           "ARCHITECTURES", "load_model", "load_as", "pipeline", "finetune", "pretrain"]


_LAZY = {"Embedder": "embed", "pipeline": "pipelines", "finetune": "pipelines"}


def __getattr__(name):  # the Embedder pulls in tqdm/numpy, the pipelines the tasks: load them on first use
    if name == "pretrain":  # the subpackage, callable: glassbert.pretrain(corpus=…) (pretrain/__init__.py)
        from importlib import import_module
        return import_module(f"{__name__}.pretrain")
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'glassbert' has no attribute {name!r}")
