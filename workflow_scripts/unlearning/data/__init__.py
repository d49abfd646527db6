"""The data stage: persons' QA pairs and TruthfulQA in, the run's QA table and the base model's known facts out.

- :mod:`.sources`: one ``datasets`` code path for hub datasets and local CSV/JSON/Parquet files, with the config's
  column mapping.
- :mod:`.qa_table`: validates the person sets and splits each person's questions into train and held-out parts;
  builds the TruthfulQA table.
- :mod:`.truthfulqa`: TruthfulQA's three public forms as one table.
- :mod:`.known_facts`: which evaluation questions the base model answers correctly.
- ``sample_data/``: the embedded default's persons, wrong answers and TruthfulQA sample (its README gives counts).

Rules: ``prepare_data`` writes ``results/data/qa.parquet`` and ``results/data/truthfulqa.parquet``;
``known_facts`` reads ``results/score/{model}/base.parquet`` and writes ``results/known/{model}.parquet``.
"""
