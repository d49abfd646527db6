"""The unlearn stage: one model, one ``unlearn:`` entry, one LoRA adapter.

- :mod:`.engine`: :func:`~unlearning.training.engine.train` (LoRA through PEFT, the precomputed reference, the
  shared retain term, resumable checkpoints, the per-step log) and ``merge_adapter``.
- ``methods/``: the method registry, one module per method (DPO, IdkDPO, GradAscent, GradDiff, NPO, SimNPO, RMU,
  UNDIAL, IHL) on the base class of :mod:`.methods.base` (the packed forward they share with scoring is
  :mod:`unlearning.inference.packed_rows`).
- :mod:`.lora_dropout`: the CPU LoRA dropout that draws a quarter of the random numbers.
- :mod:`.layers`: a model's decoder blocks (without importing transformers).
- :mod:`.lora_targets`: ``lora.target_modules`` (``all-linear``, the presets ``attention`` and ``mlp``, or names) as
  PEFT's ``target_modules``, resolved on the model's decoder layers.

Rule ``unlearn`` reads ``results/data/qa.parquet`` (and ``results/perturb/dpo_pairs.parquet`` for the DPO family)
and writes ``results/unlearn/{model}/{method}/`` (adapter + ``log.parquet``); ``merge_adapter`` merges one.
"""
