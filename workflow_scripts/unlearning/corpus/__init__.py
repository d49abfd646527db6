"""The describe stage: a forget corpus the model writes itself (RWKU's protocol), and what is trained and scored on it.

- :mod:`.describe`: the model describes each person of each set from several prompt templates, sampled, seeded;
  the texts are filtered with counted rejection reasons, and some templates per person are held out for evaluation.
- :mod:`.training_rows`: corpus rows as training examples (``forget_data`` / ``retain_data``: ``qa``, ``corpus``
  or ``both``), every text token an answer token.
- :mod:`.evaluation`: the held-out templates' figures: the likelihood of the base model's held-out texts, the
  ROUGE-L recall of those texts in the model's own answer to the same request, and LOSS / Min-K%++ membership
  scores, forget persons against their neighbours.

Rule ``describe`` writes ``results/corpus/{model}.parquet``; rule ``corpus_score`` writes
``results/corpus_score/{model}/{variant}.parquet``.
"""
