"""The export stage: an unlearned variant as users deploy it, merged into plain weights (a Hugging Face safetensors
folder) and, for a model imported from GGUF, re-quantized into a GGUF file in the source file's tensor types
(:mod:`unlearning.export.gguf_file`). The quantization attack reads that file back through the workflow's own GGUF
import (:mod:`unlearning.attacks.quantization`).
"""
