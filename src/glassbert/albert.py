"""ALBERT ("ALBERT: A Lite BERT for Self-supervised Learning of Language Representations", Lan et al. 2019) on
BERT's building blocks, with transformers' class names and parameter names.

    input_ids, token_type_ids, attention_mask                                          (B, T)
    ─▶ AlbertEmbeddings: BertEmbeddings at width E: word + token_type + position ─▶ LayerNorm   (B, T, E)
    ─▶ AlbertTransformer
         embedding_hidden_mapping_in: E ─▶ H   (the factorized embedding: V·E + E·H weights, not V·H)  (B, T, H)
         layer i = 0 … L−1 runs the weights of group ⌊i · G / L⌋ (G = num_hidden_groups; G = 1: all layers share)
           AlbertLayer (× inner_group_num per group)
             AlbertAttention: BertSelfAttention (Q, K, V; both paths) ─▶ dense ─▶ LayerNorm(· + input)
             ffn ─▶ GELU ─▶ ffn_output ─▶ full_layer_layer_norm(· + attention output)
    ─▶ AlbertPooler: [CLS] ─▶ Linear ─▶ tanh                                            (B, H)
    heads: MLM (H ─▶ E ─▶ decoder tied to the V × E table), SOP (0 = in order, 1 = swapped),
           sequence classification, token classification, QA: BERT's heads and losses

Capture: the shared layers are tapped once per run, as ``encoder.layer.{r}.…`` (r = 0 … L·inner_group_num − 1),
each run labelled with the group whose weights it uses (capture.Alias); the weights stay where transformers
stores them, ``encoder.albert_layer_groups.{g}.albert_layers.{m}.…``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .capture import CORE, KEEP, Alias, Point, Points, running, tap
from .config import AlbertConfig
from .heads import (MLM_GROUP, BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                    BertLMPredictionHead, BertPredictionHeadTransform, PreTrainingOutput, _dropout,
                    _load_classifier_from, _mlm, _rows_read, _save_classifier_as)
from .model import (ACT2FN, ATTENTION_GROUP, FFN_GROUP, BertEmbeddings, Dropout, BertIntermediate, BertModel, BertOutput,
                    BertPooler, BertSelfAttention, BertSelfOutput)
from .pretrained import BertPreTrainedModel
from .unpad import take_rows


# BERT's "NSP head (IsNext)": ALBERT's pooler feeds the sentence-order head
SOP_GROUP = "SOP head (InOrder / Swapped)"


def _embedding_wide(points) -> list[Point]:
    """BERT's points at ALBERT's embedding width: their "hidden" axis is E here."""
    return [replace(p, dims=tuple("embedding" if d == "hidden" else d for d in p.dims)) for p in points]


# ─── embeddings: BERT's, at width E ─────────────────────────────────────────────────────────
class AlbertEmbeddings(BertEmbeddings):
    """word + position + segment tables of width E (config.embedding_size) ─▶ LayerNorm(E)."""

    capture = Points(BertEmbeddings.capture.group, _embedding_wide(BertEmbeddings.capture.points))


# ─── one layer ──────────────────────────────────────────────────────────────────────────────
class AlbertAttention(BertSelfAttention):
    """BertSelfAttention (Q, K, V, the explicit and the fast path) with its output projection and add & norm:
    transformers keeps ALBERT's ``attention.dense`` and ``attention.LayerNorm`` in the attention module."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.dense = nn.Linear(config.all_head_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.output_dropout = Dropout(config.hidden_dropout_prob)

    capture = Points(ATTENTION_GROUP, [*BertSelfAttention.capture.points,
                                       *(p for p in BertSelfOutput.capture.points if p.name != "hidden_states")])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, packing=None,
                explicit: bool = False, rows=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, probs = super().forward(x, mask, packing, explicit, rows)       # (B, T, A) | (N, A) | (M, A)
        x = take_rows(x, rows)                                                    # (M, H) with rows
        out = tap(self, "dense", self.dense(context))                             # (B, T, H) | (N, H) | (M, H)
        out = tap(self, "dropout", self.output_dropout(out))
        return tap(self, "layernorm", self.LayerNorm(out + x)), probs


class AlbertLayer(nn.Module):
    """Attention, then the feed-forward block under transformers' names (ffn, ffn_output, full_layer_layer_norm)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = AlbertAttention(config)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.dropout = Dropout(config.hidden_dropout_prob)

    capture = Points(FFN_GROUP, [
        replace(BertIntermediate.capture["dense"], name="ffn", weight="ffn.weight"),
        BertIntermediate.capture["activation"],
        replace(BertOutput.capture["dense"], name="ffn_output", weight="ffn_output.weight"),
        BertOutput.capture["dropout"],
        BertOutput.capture["layernorm"],
    ], after_children=True)  # its taps follow its attention child's

    def forward(self, x, mask, packing=None, explicit=False, rows=None):
        attended, probs = self.attention(x, mask, packing, explicit, rows)        # (B, T, H) | (N, H) | (M, H)
        h = tap(self, "ffn", self.ffn(attended))                                  # (B, T, I)
        h = tap(self, "activation", self.activation(h))
        out = tap(self, "ffn_output", self.ffn_output(h))                         # (B, T, H)
        # dropout as in BERT and Google's ALBERT (transformers' AlbertLayer leaves it out; both are 0 in v2)
        out = tap(self, "dropout", self.dropout(out))
        return tap(self, "layernorm", self.full_layer_layer_norm(out + attended)), probs


# ─── the shared stack ───────────────────────────────────────────────────────────────────────
class AlbertLayerGroup(nn.Module):
    """One set of weights: inner_group_num AlbertLayers, which AlbertTransformer runs for every layer of the group."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList(AlbertLayer(config) for _ in range(config.inner_group_num))


class AlbertTransformer(nn.Module):
    """E → H, then L layers on num_hidden_groups sets of weights: layer i runs group ⌊i · G / L⌋."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList(AlbertLayerGroup(config) for _ in range(config.num_hidden_groups))
        L = config.num_hidden_layers
        uses = [sum(config.group_of(i) == g for i in range(L)) for g in range(config.num_hidden_groups)]
        self.runs: list[Alias] = []  # every run of an AlbertLayer, in order, under the name its taps are recorded with
        for i in range(L):
            g = config.group_of(i)
            for m, layer in enumerate(self.albert_layer_groups[g].albert_layers):
                label = (f"shared group {g}, inner {m} (its weights run in {uses[g]} layers)" if uses[g] > 1
                         else f"group {g}, inner {m} (weights of its own)")
                self.runs.append(Alias(f"layer.{len(self.runs)}", layer, label))

    capture = Points(BertEmbeddings.capture.group, [
        Point("projection", ("token", "hidden"), "embeddings projected E → H", "Embeddings Projected to Hidden Size",
              CORE, block="E → H", weight="embedding_hidden_mapping_in.weight", weight_block="W_E→H", row=2),
    ])

    def capture_aliases(self) -> list[Alias]:
        return self.runs

    def forward(self, x, mask, packing=None, explicit=False, last_rows=None):
        x = tap(self, "projection", self.embedding_hidden_mapping_in(x))         # (B, T, H) | (N, H)
        outputs, attentions = [], []
        for i, run in enumerate(self.runs):
            with running(run):
                x, probs = run.module(x, mask, packing, explicit, last_rows if i == len(self.runs) - 1 else None)
            outputs.append(x)
            attentions.append(probs)
        return outputs, attentions


class AlbertPooler(nn.Linear):
    """[CLS] ─▶ Linear ─▶ tanh. transformers stores the Linear itself as ``albert.pooler`` (no ``.dense``)."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config.hidden_size, config.hidden_size)

    capture = Points(BertPooler.capture.group, [replace(p, weight="weight") if p.weight else p
                                                for p in BertPooler.capture.points])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tap(self, "hidden_states", x)                                             # (B, T, H)
        first = tap(self, "first_token", x[:, 0])                                 # (B, H)
        first = tap(self, "dense", super().forward(first))
        return tap(self, "activation", torch.tanh(first))


# ─── the model ──────────────────────────────────────────────────────────────────────────────
class AlbertModel(BertModel):
    """BertModel's forward (input checks, mask, unpadding, encoder, pooler) on ALBERT's modules.
    ``embedding_output`` is (B, T, E); ``encoder_outputs`` and ``attentions`` have one entry per layer run."""

    config_class = AlbertConfig

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        BertPreTrainedModel.__init__(self, config)  # ALBERT's modules, not BertModel's
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        self.pooler = AlbertPooler(config) if add_pooling_layer else None
        self.init_weights()


class AlbertPreTrainedModel(BertPreTrainedModel):
    """The task models: ``albert`` is the backbone (the ``albert.`` of transformers' keys)."""

    base_model_prefix = "albert"
    config_class = AlbertConfig

    @property
    def bert(self) -> AlbertModel:
        """The backbone, under the name BERT's task forwards call it by (they serve ALBERT's heads too)."""
        return self.albert


# ─── pretraining heads ──────────────────────────────────────────────────────────────────────
class AlbertMLMHead(nn.Module):
    """dense H → E ─▶ GELU ─▶ LayerNorm(E) ─▶ decoder E → V, tied to the V × E word embeddings."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        E = config.embedding_size
        self.LayerNorm = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, E)
        self.decoder = nn.Linear(E, config.vocab_size)  # weight tied to the word embeddings
        self.bias = self.decoder.bias                   # transformers' name for the same vector
        self.activation = ACT2FN[config.hidden_act]

    capture = Points(MLM_GROUP, [
        BertLMPredictionHead.capture["h_masked"],
        *_embedding_wide(BertPredictionHeadTransform.capture.points),
        *(BertLMPredictionHead.capture[name] for name in ("logits", "softmax", "argmax")),
    ])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        tap(self, "h_masked", h)                                                  # (M, H)
        x = tap(self, "dense", self.dense(h))                                     # (M, E)
        x = tap(self, "activation", self.activation(x))
        x = tap(self, "layernorm", self.LayerNorm(x))
        return tap(self, "logits", self.decoder(x))                               # (M, V)


class AlbertSOPHead(nn.Module):
    """Sentence-order prediction on the pooled [CLS]: 0 = the two segments in order, 1 = swapped."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 2)

    capture = Points(SOP_GROUP, [
        Point("logits", ("sop",), "SOP logits (in order, swapped)", priority=KEEP, block="logits_sop",
              weight="classifier.weight", weight_block="W_sop", chain=1, role="nsp_logits"),
        Point("softmax", ("sop",), "SOP softmax", priority=KEEP, block="softmax", chain=1,
              derive=("softmax", "logits")),
    ])

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return tap(self, "logits", self.classifier(self.dropout(pooled)))       # (B, 2)


@dataclass
class AlbertPreTrainingOutput(PreTrainingOutput):
    """PreTrainingOutput whose sentence-pair head is SOP: ``sop_logits`` and ``sop_loss`` (transformers'
    names) are ``seq_relationship_logits`` and ``nsp_loss``, so code written for NSP reads SOP too."""

    @property
    def sop_logits(self) -> torch.Tensor | None:
        return self.seq_relationship_logits

    @property
    def sop_loss(self) -> torch.Tensor | None:
        return self.nsp_loss


# ─── task models ────────────────────────────────────────────────────────────────────────────
class AlbertForPreTraining(AlbertPreTrainedModel):
    """MLM + SOP, as ALBERT was pretrained. loss = mlm_loss + sop_loss."""
    heads = ("mlm", "sop")

    def __init__(self, config: AlbertConfig):
        # transformers sizes the SOP classifier by num_labels: keep it at SOP's two classes
        super().__init__(config.replace(num_labels=2) if config.id2label is None else config)
        self.albert = AlbertModel(self.config)
        self.predictions = AlbertMLMHead(self.config)
        self.sop_classifier = AlbertSOPHead(self.config)
        self.init_weights()

    def tie_weights(self) -> None:
        self.predictions.decoder.weight = self.albert.embeddings.word_embeddings.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                sentence_order_label=None, output_attentions=False, position_ids=None) -> AlbertPreTrainingOutput:
        out = self.albert(input_ids, token_type_ids, attention_mask, output_attentions, position_ids,
                          output_rows=_rows_read(self, labels, cls=True))
        logits, masked_index, mlm_loss = _mlm(self.predictions, out.sequence_output, labels)
        sop_logits = self.sop_classifier(out.pooled_output)                       # (B, 2)
        sop_loss = None if sentence_order_label is None else \
            F.cross_entropy(sop_logits.float(), sentence_order_label.view(-1))
        losses = [x for x in (mlm_loss, sop_loss) if x is not None]
        return AlbertPreTrainingOutput(sum(losses) if losses else None, mlm_loss, sop_loss, logits, sop_logits,
                                       masked_index, out)


class AlbertForMaskedLM(AlbertPreTrainedModel):
    heads = ("mlm",)
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.predictions = AlbertMLMHead(config)
        self.init_weights()

    def tie_weights(self) -> None:
        self.predictions.decoder.weight = self.albert.embeddings.word_embeddings.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                output_attentions=False, position_ids=None) -> PreTrainingOutput:
        out = self.albert(input_ids, token_type_ids, attention_mask, output_attentions, position_ids,
                          output_rows=_rows_read(self, labels, cls=False))
        logits, masked_index, loss = _mlm(self.predictions, out.sequence_output, labels)
        return PreTrainingOutput(loss, loss, None, logits, None, masked_index, out)


class AlbertForSequenceClassification(AlbertPreTrainedModel):
    """BertForSequenceClassification's head on ALBERT: pooler | [CLS] | mean pooling, dropout, a linear layer;
    its losses and its saved names."""
    heads = ("classifier",)

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()
        self.register_state_dict_post_hook(_save_classifier_as)
        self.register_load_state_dict_pre_hook(_load_classifier_from)

    capture = BertForSequenceClassification.capture
    forward = BertForSequenceClassification.forward
    state_dict_as_saved = BertForSequenceClassification.state_dict_as_saved


class AlbertForTokenClassification(AlbertPreTrainedModel):
    """BertForTokenClassification's head and loss on ALBERT."""
    heads = ("tagger",)

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.dropout = _dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    capture = BertForTokenClassification.capture
    forward = BertForTokenClassification.forward


class AlbertForQuestionAnswering(AlbertPreTrainedModel):
    """BertForQuestionAnswering's span head and loss on ALBERT (padding never starts or ends an answer)."""
    heads = ("span",)

    def __init__(self, config: AlbertConfig):
        super().__init__(config.replace(num_labels=2) if config.id2label is None else config)
        self.albert = AlbertModel(self.config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    capture = BertForQuestionAnswering.capture
    forward = BertForQuestionAnswering.forward


__all__ = ["AlbertModel", "AlbertForPreTraining", "AlbertForMaskedLM", "AlbertForSequenceClassification",
           "AlbertForTokenClassification", "AlbertForQuestionAnswering",
           "AlbertEmbeddings", "AlbertAttention", "AlbertLayer", "AlbertLayerGroup", "AlbertTransformer", "AlbertPooler",
           "AlbertPreTrainedModel", "AlbertMLMHead", "AlbertSOPHead", "AlbertPreTrainingOutput"]
