"""The perturbation stage: plausible wrong answers for the forget and hard-retain questions, and DPO pairs.

- :mod:`.wrong_answers`: the perturber LLM's candidates (or a pre-made file), cleaned and filtered with counted
  rejection reasons; ``templates/perturb.txt`` is its default prompt.
- :mod:`.pairs`: preference pairs (chosen = a wrong answer or a refusal, rejected = the truth).

Rule ``perturb`` reads ``results/data/qa.parquet`` and writes ``results/perturb/perturbations.parquet``;
``build_pairs`` writes ``results/perturb/dpo_pairs.parquet`` (only entries whose method needs pairs wait on it).
"""
