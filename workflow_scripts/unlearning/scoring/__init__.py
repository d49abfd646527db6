"""The generate and score stages, the summary and the sweep's operating points.

- :mod:`.evaluation`: the evaluation questions, the answers of one variant (``generate``), their per-row scores
  (``score``) and the long summary table (``summarize``).
- :mod:`.metrics`: text and number metrics (ROUGE, BLEU, truth ratio, MC1/MC2, fluency, ...), no model code.
- :mod:`.metric_registry`: every summary metric declared once (name, splits, direction, source).
- :mod:`.field_scores`: the per-row columns of the field's metrics from the one teacher-forced pass.
- :mod:`.operating_points`: the chosen entry of each sweep, from training-side splits only.

Rules: ``generate`` writes ``results/generate/{model}/{variant}.parquet``; ``score`` writes
``results/score/{model}/{variant}.parquet``; ``summarize`` writes ``results/score/summary.parquet``;
``select_operating_points`` writes ``results/score/operating_points.parquet``.
"""
