"""The unlearn stage: one model, one ``unlearn:`` entry, one LoRA adapter.

- :mod:`.engine`: :func:`~unlearning.training.engine.train` (LoRA through PEFT, the precomputed reference, the
  shared retain term, resumable checkpoints, the per-step log) and ``merge_adapter``.
- ``methods/``: the method registry, one module per method (DPO, IdkDPO, GradAscent, GradDiff, NPO, SimNPO, RMU,
  UNDIAL) on the base class of :mod:`.methods.base` (the packed forward they share with scoring is
  :mod:`unlearning.inference.packed_rows`).
- :mod:`.lora_dropout`: the CPU LoRA dropout that draws a quarter of the random numbers.
- :mod:`.layers`: a model's decoder blocks (without importing transformers).

Rule ``unlearn`` reads ``results/data/qa.parquet`` (and ``results/perturb/dpo_pairs.parquet`` for the DPO family)
and writes ``results/unlearn/{model}/{method}/`` (adapter + ``log.parquet``); ``merge_adapter`` merges one.
"""
