"""Task heads on top of BertModel, with transformers' class names, key names and losses.

    BertModel ─▶ sequence_output (B, T, H) ─▶ MLM: gather masked rows ─▶ transform ─▶ decoder (tied) ─▶ (M, V)
              └▶ pooled_output (B, H)     ─▶ NSP: seq_relationship ─▶ (B, 2)   0 = IsNext, 1 = NotNext
    and sequence classification (B, labels), token classification (B, T, labels), QA spans (B, T) × 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .capture import CORE, KEEP, Point, Points, tap
from .config import BertConfig
from .errors import InputError
from .model import ACT2FN, BertModel, BertModelOutput, Dropout, pool
from .pretrained import BertPreTrainedModel
from .unpad import gather_rows
from .tokenizer import IGNORE_INDEX


# ─── outputs ────────────────────────────────────────────────────────────────────────────────
@dataclass
class PreTrainingOutput:
    loss: torch.Tensor | None
    mlm_loss: torch.Tensor | None
    nsp_loss: torch.Tensor | None
    prediction_logits: torch.Tensor | None   # (M, V) at masked positions when labels given, else (B, T, V)
    seq_relationship_logits: torch.Tensor | None  # (B, 2)
    masked_index: torch.Tensor | None        # (M,) flat indices into B*T of the masked positions
    bert: BertModelOutput


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor                      # (B, num_labels)
    bert: BertModelOutput


@dataclass
class TokenClassifierOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor                      # (B, T, num_labels)
    bert: BertModelOutput


@dataclass
class QuestionAnsweringOutput:
    loss: torch.Tensor | None
    start_logits: torch.Tensor                # (B, T)
    end_logits: torch.Tensor                  # (B, T)
    bert: BertModelOutput


# ─── head modules (key names as transformers) ───────────────────────────────────────────────
MLM_GROUP = "MLM head (masked words)"


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    capture = Points(MLM_GROUP, [
        Point("dense", ("masked", "hidden"), "MLM transform dense", priority=CORE),
        Point("activation", ("masked", "hidden"), "MLM transform GELU", priority=CORE, block="GELU",
              weight="dense.weight", weight_block="W_t"),
        Point("layernorm", ("masked", "hidden"), "MLM transform LayerNorm", priority=CORE, block="LayerNorm"),
    ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = tap(self, "dense", self.dense(x))                                     # (M, H)
        x = tap(self, "activation", self.act(x))
        return tap(self, "layernorm", self.LayerNorm(x))


class BertLMPredictionHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)  # weight tied to word embeddings
        self.bias = self.decoder.bias                                   # transformers' name for the same vector

    capture = Points(MLM_GROUP, [
        Point("h_masked", ("masked", "hidden"), "h_masked", priority=CORE, block="h_masked"),
        Point("logits", ("masked", "vocab"), "MLM logits", priority=CORE, block="logits_lm", weight="decoder.weight",
              weight_block="decoder (tied W tok)", row=1, role="mlm_logits"),
        Point("softmax", ("masked", "vocab"), "MLM softmax", priority=CORE, block="softmax", row=1,
              derive=("softmax", "logits")),
        Point("argmax", ("masked",), "MLM argmax", priority=KEEP, block="argmax", row=1, derive=("argmax", "logits")),
    ])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        tap(self, "h_masked", h)                                                  # (M, H)
        return tap(self, "logits", self.decoder(self.transform(h)))               # (M, V)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)


NSP_GROUP = "NSP head (IsNext)"  # drawn after the pooler's box and the MLM head's, as the forward taps them
NSP_POINTS = Points(NSP_GROUP, [
    Point("seq_relationship.logits", ("nsp",), "NSP logits (IsNext, NotNext)", priority=KEEP, block="logits_clsf",
          weight="seq_relationship.weight", weight_block="W_nsp", chain=1, role="nsp_logits"),
    Point("seq_relationship.softmax", ("nsp",), "NSP softmax", priority=KEEP, block="softmax", chain=1,
          derive=("softmax", "seq_relationship.logits")),
], after_children=True)  # BertPreTrainingHeads taps them after its MLM child's


class BertOnlyNSPHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    capture = NSP_POINTS


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    capture = NSP_POINTS


def _mlm(head: BertLMPredictionHead, sequence_output: torch.Tensor, labels: torch.Tensor | None):
    """Decode only the masked rows when labels are given (most of the head's cost on a big vocab)."""
    B, T, H = sequence_output.shape
    if labels is None:
        return head(sequence_output.reshape(B * T, H)).view(B, T, -1), None, None
    if tuple(labels.shape) != (B, T):
        raise InputError(f"MLM labels have shape {tuple(labels.shape)}, expected {(B, T)}")
    flat = labels.reshape(-1)
    masked_index = (flat != IGNORE_INDEX).nonzero().squeeze(1)                   # (M,)
    logits = head(gather_rows(sequence_output.reshape(B * T, H), masked_index))    # (M, V)
    targets = flat.index_select(0, masked_index)
    if masked_index.numel() == 0:
        loss = logits.sum() * 0.0  # no masked token in this batch: a zero that keeps the graph
    else:
        loss = F.cross_entropy(logits.float(), targets)
    return logits, masked_index, loss


def _rows_read(model: nn.Module, labels: torch.Tensor | None, cls: bool) -> torch.Tensor | None:
    """(B, T) bool: the tokens whose last-layer output the MLM loss reads (and the pooler's [CLS] when ``cls``);
    None without labels or outside training. BertModel's last layer then computes only these rows. Training
    only: in eval mode every row is computed, for whatever reads the layers' outputs (attribution's hooks)."""
    if labels is None or not model.training:
        return None
    rows = (labels != IGNORE_INDEX).reshape(-1, labels.shape[-1])
    if cls:
        rows[:, 0] = True
    return rows


def _nsp(head: BertOnlyNSPHead | BertPreTrainingHeads, pooled: torch.Tensor, labels: torch.Tensor | None):
    logits = tap(head, "seq_relationship.logits", head.seq_relationship(pooled))  # (B, 2)
    loss = None if labels is None else F.cross_entropy(logits.float(), labels.view(-1))
    return logits, loss


# ─── task models ────────────────────────────────────────────────────────────────────────────
class BertForPreTraining(BertPreTrainedModel):
    """MLM + NSP, as BERT was pretrained. loss = mlm_loss + nsp_loss."""
    heads = ("mlm", "nsp")
    encoder_class = BertModel  # what it builds under its heads (a BERT variant names its own)

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = self.encoder_class(config)
        self.cls = BertPreTrainingHeads(config)
        self.init_weights()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                next_sentence_label=None, output_attentions=False, position_ids=None) -> PreTrainingOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions, position_ids,
                        output_rows=_rows_read(self, labels, cls=True))
        logits, masked_index, mlm_loss = _mlm(self.cls.predictions, out.sequence_output, labels)
        nsp_logits, nsp_loss = _nsp(self.cls, out.pooled_output, next_sentence_label)
        losses = [x for x in (mlm_loss, nsp_loss) if x is not None]
        loss = sum(losses) if losses else None
        return PreTrainingOutput(loss, mlm_loss, nsp_loss, logits, nsp_logits, masked_index, out)


class BertForMaskedLM(BertPreTrainedModel):
    heads = ("mlm",)
    encoder_class = BertModel  # what it builds under its heads (a BERT variant names its own)
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = self.encoder_class(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.init_weights()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                output_attentions=False, position_ids=None) -> PreTrainingOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions, position_ids,
                        output_rows=_rows_read(self, labels, cls=False))
        logits, masked_index, loss = _mlm(self.cls.predictions, out.sequence_output, labels)
        return PreTrainingOutput(loss, loss, None, logits, None, masked_index, out)


class BertForNextSentencePrediction(BertPreTrainedModel):
    heads = ("nsp",)
    encoder_class = BertModel  # what it builds under its heads (a BERT variant names its own)
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = self.encoder_class(config)
        self.cls = BertOnlyNSPHead(config)
        self.init_weights()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, next_sentence_label=None,
                output_attentions=False) -> PreTrainingOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions)
        logits, loss = _nsp(self.cls, out.pooled_output, next_sentence_label)
        return PreTrainingOutput(loss, None, loss, None, logits, None, out)


def _dropout(config: BertConfig) -> Dropout:
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return Dropout(p)


# ─── the classifier's name in a saved state_dict ────────────────────────────────────────────
# transformers' BertForSequenceClassification always feeds its classifier the pooler's output. A classifier
# trained on another pooling is therefore saved under a name transformers does not know: loading it there
# reports `classifier.weight`/`classifier.bias` as MISSING (newly initialized) instead of silently predicting
# other labels. This is the one place that maps between the module (always `classifier`) and the file.
MODULE_CLASSIFIER = "classifier"
SAVED_CLASSIFIER = {"pooler": MODULE_CLASSIFIER, "cls": "classifier_cls_pooling", "mean": "classifier_mean_pooling"}


def _rename_prefix(state: dict, old: str, new: str) -> None:
    """In place: ``old.*`` → ``new.*`` (exact first components: ``classifier.`` is not ``classifier_x.``)."""
    if old == new:
        return
    for key in [k for k in state if k.startswith(old + ".")]:
        state[new + key[len(old):]] = state.pop(key)


def classifier_keys_as_saved(state: dict, pooling: str, prefix: str = "") -> dict:
    """``state`` (in place, and returned) with the head under its saved name for ``pooling``. Also upgrades
    a directory written before the saved names existed (``classifier.*`` whatever the pooling)."""
    _rename_prefix(state, prefix + MODULE_CLASSIFIER, prefix + SAVED_CLASSIFIER[pooling])
    return state


def _save_classifier_as(module: "BertForSequenceClassification", state: dict, prefix: str, _metadata) -> None:
    classifier_keys_as_saved(state, module.config.classifier_pooling, prefix)


def _load_classifier_from(module: "BertForSequenceClassification", state: dict, prefix: str, *_args) -> None:
    # the saved name for this pooling, or `classifier.*` as older glassbert wrote it for every pooling
    saved = SAVED_CLASSIFIER[module.config.classifier_pooling]
    _rename_prefix(state, prefix + saved, prefix + MODULE_CLASSIFIER)


class BertForSequenceClassification(BertPreTrainedModel):
    """A linear classifier on a pooled sentence vector: the pooler (transformers' default), [CLS], or the
    mean of the real tokens — the last two let head-only training work on checkpoints (like MiniLM)
    whose pooler was never trained.

    Its ``state_dict`` (so model.safetensors, the Trainer's checkpoints) names the head after the pooling
    (:data:`SAVED_CLASSIFIER`): only the pooler's head is the ``classifier`` transformers would use."""
    heads = ("classifier",)
    encoder_class = BertModel  # what it builds under its heads (a BERT variant names its own)

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = self.encoder_class(config)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()
        self.register_state_dict_post_hook(_save_classifier_as)
        self.register_load_state_dict_pre_hook(_load_classifier_from)

    def state_dict_as_saved(self, state: dict) -> dict:
        """A loaded checkpoint's tensors under the names this model's ``state_dict`` uses."""
        return classifier_keys_as_saved(dict(state), self.config.classifier_pooling)

    capture = Points("Classifier head", [
        Point("logits", ("label",), "class logits", priority=KEEP, block="logits", weight="classifier.weight",
              weight_block="W_clf", role="class_logits"),
    ], after_children=True)  # the logits come after the encoder: the box goes below it

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                output_attentions=False) -> SequenceClassifierOutput:
        rows = None
        if self.training and self.config.classifier_pooling in ("pooler", "cls"):  # only [CLS] is read
            rows = torch.zeros(input_ids.shape, dtype=torch.bool, device=input_ids.device)
            rows[..., 0] = True
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions, output_rows=rows)
        pooled = pool(out.sequence_output, attention_mask, self.config.classifier_pooling, out.pooled_output)
        logits = tap(self, "logits", self.classifier(self.dropout(pooled)))      # (B, num_labels)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float().view(-1))
            elif labels.dtype in (torch.long, torch.int):
                loss = F.cross_entropy(logits.float(), labels.view(-1))
            else:  # multi-label: float targets (B, num_labels)
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return SequenceClassifierOutput(loss, logits, out)


class BertForTokenClassification(BertPreTrainedModel):
    heads = ("tagger",)
    encoder_class = BertModel  # what it builds under its heads (a BERT variant names its own)
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = self.encoder_class(config, add_pooling_layer=False)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    capture = Points("Token classifier head", [
        Point("logits", ("token", "label"), "tag logits per token", priority=KEEP, block="logits",
              weight="classifier.weight", weight_block="W_tag"),
    ], after_children=True)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                output_attentions=False) -> TokenClassifierOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions)
        logits = tap(self, "logits", self.classifier(self.dropout(out.sequence_output)))  # (B, T, L)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, self.num_labels), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return TokenClassifierOutput(loss, logits, out)


class BertForQuestionAnswering(BertPreTrainedModel):
    """Start and end logits per token. Unlike transformers, padding positions get the most negative
    logit, so they take no probability mass in the loss or in decoding (equal elsewhere)."""
    heads = ("span",)
    encoder_class = BertModel  # what it builds under its heads (a BERT variant names its own)

    def __init__(self, config: BertConfig):
        super().__init__(config.replace(num_labels=2) if config.id2label is None else config)
        self.bert = self.encoder_class(self.config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    capture = Points("Span head (question answering)", [
        Point("logits", ("token", "start_end"), "start and end logits per token", priority=KEEP, block="logits",
              weight="qa_outputs.weight", weight_block="W_span"),
    ], after_children=True)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None,
                end_positions=None, output_attentions=False) -> QuestionAnsweringOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions)
        logits = tap(self, "logits", self.qa_outputs(out.sequence_output))      # (B, T, 2)
        if attention_mask is not None:  # an answer never starts or ends on padding
            logits = logits.masked_fill(~attention_mask.bool()[..., None], torch.finfo(logits.dtype).min)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)  # positions outside the window are ignored, as transformers does
            start = start_positions.view(-1).clamp(0, ignored)
            end = end_positions.view(-1).clamp(0, ignored)
            loss = (F.cross_entropy(start_logits.float(), start, ignore_index=ignored)
                    + F.cross_entropy(end_logits.float(), end, ignore_index=ignored)) / 2
        return QuestionAnsweringOutput(loss, start_logits, end_logits, out)


__all__ = ["BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction", "BertForSequenceClassification",
           "BertForTokenClassification", "BertForQuestionAnswering", "PreTrainingOutput", "SequenceClassifierOutput",
           "TokenClassifierOutput", "QuestionAnsweringOutput", "IGNORE_INDEX", "SAVED_CLASSIFIER",
           "classifier_keys_as_saved"]
