# Helpers shared by every .smk file: per-model settings and resources, and which inputs a job needs. They only
# read the config and the file tree; nothing here changes a file while the DAG is parsed.
from snakemake.exceptions import WorkflowError

# workflow_scripts/ is on sys.path (the Snakefile puts it there)
from unlearning.core.parquet_io import config_hash, looks_complete  # noqa: E402
from unlearning.config.settings import (  # noqa: E402
    deep_merge,
    expand_unlearn,
    import_settings,
    pairs_file,
    perturb_settings,
    pooled_name,
    prompt_style,
    seed_groups,
    sweep_of,
    unlearn_entries,
    unlearn_settings,
)


def resolve_local_paths():
    """Relative data paths (and the pre-made wrong answers) are read from the working directory, else from the
    workflow's folder, so that the embedded sample works with any --directory."""
    specs = [config["data"]["persons"].get(r) for r in ("forget", "retain", "general")]
    specs.append(config["data"]["truthfulqa"])
    for spec in specs:
        if spec and spec.get("source") == "local" and not Path(spec["path"]).exists():
            shipped = Path(workflow.basedir) / spec["path"]
            if shipped.exists():
                spec["path"] = str(shipped)
    premade = config.get("perturb", {}).get("premade")
    if premade and not Path(premade).exists() and (Path(workflow.basedir) / premade).exists():
        config["perturb"]["premade"] = str(Path(workflow.basedir) / premade)


FINAL_PRODUCTS = ("results/score/summary.parquet", "results/report/report.html", "results/report/report.md")


def truncated_artifacts():
    """Parquet artifacts under results/ that are truncated (a crash below Snakemake's own bookkeeping, a full disk).
    Read-only: the checkpoint remove_truncated_artifacts (rules/repair.smk) removes them in a real run only."""
    results = Path("results")
    return sorted(str(p) for p in results.rglob("*.parquet") if not looks_complete(p)) if results.is_dir() else []


def truncated_marker(files):
    """The checkpoint's marker file, named after what was found (path, size, mtime), so each new find reruns it."""
    stamp = [(p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in files]
    return f"results/.truncated/{config_hash(stamp)}.done"


def sorted_keys(value):
    """``value`` with every mapping's keys in sorted order. Snakemake compares a job's params in order, so without
    this a config whose keys are merely reordered (by hand or by a tool that dumps YAML) would rerun everything."""
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value


resolve_local_paths()


def preflight():
    """Contradictions between config keys, and between the config and its data, stop the run before any job."""
    from snakemake.exceptions import WorkflowError

    from unlearning.core.errors import InputError
    from unlearning.config.preflight import check_config

    try:
        for warning in check_config(config):
            logger.warning(f"config: {warning}")
    except InputError as exc:
        raise WorkflowError(str(exc)) from None


MODELS = list(config["models"])  # in the config's order, which the report keeps
_canonical = sorted_keys(config)
config.clear()
config.update(_canonical)
# The unlearn: entries (grids expanded) and the variants scored per model: base plus one per entry. Every rule and
# the report take the variant list from here. Entries come in sorted order, from the canonical config, so that
# neither reordering unlearn: nor the keys of a grid renames or reruns anything.
def checked_unlearn_entries():
    """The expanded entries; a malformed grid or a reserved name is a config error before any job."""
    if "base" in config["unlearn"]:
        raise WorkflowError("config: unlearn.base: `base` is reserved for the model without an adapter; rename it")
    try:
        return unlearn_entries(config)
    except ValueError as exc:
        raise WorkflowError(f"config: {exc}") from None


UNLEARN = checked_unlearn_entries()
preflight()
VARIANTS = ["base", *UNLEARN]


def checked_attacks():
    """attacks: with each entry's kind and settings resolved; a bad entry is a config error before any job."""
    from unlearning.attacks import attack_entries, attack_runs
    from unlearning.core.errors import InputError

    try:
        return attack_entries(config), attack_runs(config, MODELS, VARIANTS)
    except InputError as exc:
        raise WorkflowError(f"config: {exc}") from None


ATTACKS, ATTACK_RUNS = checked_attacks()  # name -> settings; every (model, variant, attack) the summary reads
# The variants the report compares: an entry trained with several seeds once, under its own name (the summary pools
# its runs), every other entry as it is.
REPORT_VARIANTS = ["base", *dict.fromkeys(pooled_name(config).values())]
TRAIN_RUNTIME_FACTOR = 2  # training gets twice the runtime a model entry gives its other heavy jobs



def scoring_settings(config):
    """The score block without the known-fact keys: changing the known-fact rule must not rerun scoring."""
    return {k: v for k, v in config["score"].items() if not k.startswith("known_")}


def known_settings(config):
    """The known-fact rule's settings (score.known_rule, score.known_threshold)."""
    return {k: v for k, v in config["score"].items() if k.startswith("known_")}


def model_resources(model):
    """mem_mb, runtime (minutes), gpu and threads of a model's heavy jobs, from its config entry."""
    return config["models"][model]["resources"]


def perturber_key():
    """The models: key of the perturber when it is one of the run's models, else None."""
    name = config["perturb"].get("model")
    return name if name in config["models"] else None


def perturber_may_run():
    """Whether the perturber LLM may run: no pre-made file, or one whose uncovered questions it fills."""
    cfg = config["perturb"]
    return bool(cfg.get("model")) and (not cfg.get("premade") or cfg.get("fill_missing", True))


def perturber_inputs(wildcards):
    key = perturber_key()
    return {"model": f"results/models/{key}"} if key else {}


def local_data_files(wildcards):
    """Local data files of the run, so that editing one reruns prepare_data."""
    specs = [config["data"]["persons"].get(r) for r in ("forget", "retain", "general")]
    specs.append(config["data"]["truthfulqa"])
    return [s["path"] for s in specs if s and s.get("source") == "local"]


def premade_inputs(wildcards):
    path = config["perturb"].get("premade")
    return {"premade": path} if path else {}


def validate_unlearn_entries():
    """Every unlearn: entry, grids expanded, against the schema's entry and its method, for every model, before
    any job runs (the schema itself sees a grid's values only as lists)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load((Path(workflow.basedir) / "schemas" / "config.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/unlearn_entry"})
    sweeps, pooled = sweep_of(config), pooled_name(config)
    for entry, spec in expand_unlearn(config).items():
        # an expanded entry's name is not in the user's file: name the grid (and seed) it came from
        sweep = sweeps[pooled[entry]]
        origin = f" (a point of unlearn.{sweep}.grid)" if sweep != pooled[entry] else ""
        origin += f" (seed {spec['seed']} of {pooled[entry]})" if pooled[entry] != entry else ""
        error = jsonschema.exceptions.best_match(validator.iter_errors(spec))
        if error is not None:
            where = "".join(f".{key}" for key in error.absolute_path)
            raise WorkflowError(f"config: unlearn.{entry}{where}{origin}: {error.message}")
        for model in MODELS:
            try:
                unlearn_settings(config, model, entry)
            except ValueError as exc:
                raise WorkflowError(f"config{origin}: {exc}") from None


def training_log(model, method):
    """The per-step training log of one method of one model."""
    return f"results/unlearn/{model}/{method}/log.parquet"


def training_benchmark(model, method):
    return f"results/benchmarks/unlearn/{model}/{method}.tsv"


def report_scores():
    """model -> variant -> per-row scores, for the report."""
    if not HAS_QA:  # a forget set given by names only: the corpus's figures are in the summary
        return {}
    return {m: {v: f"results/score/{m}/{v}.parquet" for v in VARIANTS} for m in MODELS}


def report_logs():
    """model -> method -> training log, for the report."""
    return {m: {u: training_log(m, u) for u in UNLEARN} for m in MODELS}


def report_benchmarks():
    """Snakemake benchmark files of the heavy jobs, for the report's run times."""
    # no entry that reads DPO pairs: the perturber never runs
    perturbed = any(pairs_file(config, m, u) for m in MODELS for u in UNLEARN)
    return [
        *(["results/benchmarks/perturb.tsv"] if perturbed else []),
        *(training_benchmark(m, u) for m in MODELS for u in UNLEARN),
        *(expand("results/benchmarks/generate/{model}/{variant}.tsv", model=MODELS, variant=VARIANTS) if HAS_QA else []),
        *(expand("results/benchmarks/score/{model}/{variant}.tsv", model=MODELS, variant=VARIANTS) if HAS_QA else []),
        *expand("results/benchmarks/describe/{model}.tsv", model=CORPUS_MODELS),
        *(f"results/benchmarks/corpus_score/{m}/{v}.tsv" for m, v in CORPUS_RUNS),
    ]


def adapter_inputs(wildcards):
    """The adapter of an unlearn: entry's variant; nothing for base, which never waits on training."""
    if wildcards.variant != "base":
        return {"adapter": f"results/unlearn/{wildcards.model}/{wildcards.variant}/adapter"}
    return {}


def corpus_inputs(wildcards):
    """The model's corpus, for an unlearn job whose entry trains on it."""
    if trains_on_corpus(wildcards.model, wildcards.method):
        return {"corpus": f"results/corpus/{wildcards.model}.parquet"}
    return {}


def pairs_inputs(wildcards):
    """The DPO pairs, for the methods that train on them only: the others never wait on the perturber. An entry
    with pairing: own_answer reads its model's own-answer pairs (so it waits on that model's base generation)."""
    path = pairs_file(config, wildcards.model, wildcards.method)
    return {"pairs": path} if path else {}


validate_unlearn_entries()


def names_only_sets():
    """The person sets given by names only: `names:`, or a local file with just the person column (a hub dataset's
    columns are known only when the data stage loads it; there a names-only forget set fails the unlearn jobs that
    train on its QA, naming it)."""
    from unlearning.data.person_names import names_only_columns
    from unlearning.data.sources import local_header

    persons = config["data"]["persons"]
    found = []
    for role in ("forget", "retain", "general"):
        spec = persons.get(role)
        if not spec:
            continue
        mapping = {**persons["columns"], **(spec.get("columns") or {})}
        header = None if "names" in spec else local_header(spec)
        if "names" in spec or (header is not None and names_only_columns(header, mapping)):
            found.append(role)
    return found


def trains_on_corpus(model, entry):
    """Whether an entry's unlearn job of `model` reads the corpus (forget_data or retain_data corpus or both)."""
    settings = unlearn_settings(config, model, entry)
    return bool({settings.get("forget_data", "qa"), settings.get("retain_data", "qa")} & {"corpus", "both"})


def check_names_only_entries():
    """Every entry that would train on the QA pairs of a set given by names only, and attacks (scored on QA facts)
    with a forget set given by names only: config errors before any job, all of them in one message."""
    from unlearning.config.preflight import role_of
    problems = []
    for entry in UNLEARN:
        for model in MODELS:
            settings = unlearn_settings(config, model, entry)
            found = []
            if "forget" in NAMES_ONLY and settings.get("forget_data", "qa") != "corpus":
                found.append(
                    f"unlearn.{entry}: data.persons.forget is given by names only, so there are no QA pairs to "
                    "forget: set forget_data: corpus (in the entry or in train:)"
                )
            retained = {role_of(s) for s in settings["retain_split"]} & set(NAMES_ONLY)
            uses_retain = settings["retain_weight"] or (settings.get("lora") or {}).get("init") == "fila"
            if uses_retain and retained and settings.get("retain_data", "qa") == "qa":
                found.append(
                    f"unlearn.{entry}: retain_split names the {' and '.join(sorted(retained))} set, given by names "
                    "only, so the retain term has no QA pairs there: set retain_data: corpus or both"
                )
            if found:
                problems += found
                break  # one model's message per entry
    if config.get("attacks") and "forget" in NAMES_ONLY:
        problems.append(
            "attacks: every attack is scored on the forget persons' held-out QA facts, and data.persons.forget is "
            "given by names only; set attacks: {}"
        )
    if problems:
        if len(problems) == 1:
            raise WorkflowError(f"config: {problems[0]}")
        raise WorkflowError(
            "config: a person set given by names only contradicts these settings (nothing was run):\n"
            + "\n".join(f"- {p}" for p in problems)
        )


NAMES_ONLY = names_only_sets()
# QA figures need QA for the forget persons; a forget set given by names only is scored on the corpus alone
HAS_QA = "forget" not in NAMES_ONLY
# the models that write a corpus: all of them where a set is given by names only, else those an entry trains on it
CORPUS_MODELS = [m for m in MODELS if NAMES_ONLY or any(trains_on_corpus(m, e) for e in UNLEARN)]
SUMMARY_RUNS = [(m, v) for m in MODELS for v in VARIANTS] if HAS_QA else []  # the QA score tables the summary reads
CORPUS_RUNS = [(m, v) for m in CORPUS_MODELS for v in VARIANTS]  # the corpus score tables it reads
check_names_only_entries()


def attack_inputs(wildcards):
    """An attack job's variant: its unlearn output (for attacks that run the variant as it is) and its export
    folder (for attacks that start from the merged or re-quantized model)."""
    from unlearning.attacks import get_attack

    needs_export = get_attack(ATTACKS[wildcards.attack]["attack"]).needs_export
    inputs = adapter_inputs(wildcards)
    if needs_export and wildcards.variant != "base":
        inputs["export"] = f"results/export/{wildcards.model}/{wildcards.variant}"
    return inputs


def export_types(wildcards):
    """The GGUF types an export writes: export.gguf_type (None: the source's types) and every quantization
    attack's type."""
    types = [config["export"].get("gguf_type")]
    types += [spec["gguf_type"] for spec in ATTACKS.values() if spec["attack"] == "quantization"]
    return list(dict.fromkeys(types))


def attack_train_settings(model):
    """The run's train: block with the model's own overrides: what a relearning attack starts its settings from."""
    return sorted_keys(deep_merge(config["train"], config["models"][model].get("train")))


def attack_scores():
    """The score file of every (model, variant, attack) run, in ATTACK_RUNS' order."""
    return [f"results/attack/{m}/{v}/{a}.parquet" for m, v, a in ATTACK_RUNS]
