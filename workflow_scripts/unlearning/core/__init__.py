"""What every stage uses: the user-facing error type, Parquet artifacts with provenance, output file modes, and the
frame around each job.

- :mod:`.errors`: :class:`~unlearning.core.errors.InputError`, the one exception for input a user must fix, and the
  "did you mean" hint.
- :mod:`.parquet_io`: atomic Parquet writes with the stage, config slice, seed and library versions as metadata;
  validated reads.
- :mod:`.file_modes`: outputs get the mode the user's umask gives.
- :mod:`.job`: :func:`~unlearning.core.job.stage`, the logging and clean failure every entry script in
  ``workflow_scripts/`` runs its library call inside.

Reads and writes nothing by itself; imports neither torch nor transformers.
"""
