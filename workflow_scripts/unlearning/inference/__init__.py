"""What the model does at inference, shared by perturbation, generation and scoring.

- :mod:`.prompting`: questions into prompts (the model's chat template, or the plain few-shot prompt).
- :mod:`.batching`: length-sorted batches that halve on CUDA out-of-memory; the shared opening and prompts.
- :mod:`.generation`: batched greedy decoding (or seeded sampling) with a KV cache.
- :mod:`.likelihood`: teacher-forced log-likelihood of continuations, with per-token details.
- :mod:`.packed_rows`: the teacher-forced forward of training and likelihood: rows packed without padding, the
  LM head on answer positions only.

No rule of its own: ``perturb`` and ``generate`` call :mod:`.generation`, ``score`` calls :mod:`.likelihood`,
``unlearn`` builds its prompts with :mod:`.prompting`.
"""
