"""The config as the Snakefile reads it when it parses the workflow, before any job runs.

- :mod:`.schema`: the config against ``schemas/config.schema.yaml``, with a one-line error naming the key.
- :mod:`.settings`: the merged settings slice each job depends on (per model, per ``unlearn:`` entry, grids
  expanded), so that Snakemake reruns exactly the chains whose settings changed.
- :mod:`.preflight`: contradictions between keys and with the data files' headers, found before any job.

Read by the Snakefile and ``rules/common.smk``; writes nothing.
"""
