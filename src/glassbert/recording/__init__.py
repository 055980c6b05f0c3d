"""The run's record: what the explorer shows, written during training and read by the explorer.

    spec.py      the ``--record`` grammar (which samples, which epochs/steps)
    snapshot.py  one forward pass under Capture → per-sample tensors, weights, and what each one is
    recorder.py  Recorder (when to snapshot, the size bound, the manifest), RecordCallback
    oneshot.py   one snapshot of any model outside training: record_model, record_once, record_batch
    weights.py   every snapshot's weights from a float32 base and what changed (written and rebuilt)
    store.py     the files on disk: manifest, tensor reads, metrics reads, the size budget

    from glassbert.recording import Recorder, RecordCallback
    trainer = Trainer(..., callbacks=[RecordCallback(Recorder(run_dir, samples, tokenizer, "every_steps=100"))])
"""
from glassbert.recording.oneshot import record_model, record_once
from glassbert.recording.recorder import DEFAULT_MAX_BYTES, RecordCallback, Recorder
from glassbert.recording.snapshot import describe_weight
from glassbert.recording.spec import RecordSpec, parse_record_spec
from glassbert.recording.store import (
                                       MANIFEST_VERSION,
                                       RecordStore,
                                       has_recording,
                                       load_manifest,
                                       load_tensor,
                                       read_metrics,
                                       record_dir,
)

__all__ = ["Recorder", "RecordCallback", "RecordSpec", "RecordStore", "parse_record_spec", "record_once", "record_model", "has_recording",
           "load_manifest", "load_tensor", "read_metrics", "record_dir", "describe_weight", "DEFAULT_MAX_BYTES",
           "MANIFEST_VERSION"]
