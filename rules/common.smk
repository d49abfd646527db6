# Helpers shared by every .smk file: per-model settings and resources, and which inputs a job needs.
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from unlearning.parquet_io import looks_complete  # noqa: E402
from unlearning.settings import perturb_settings, prompt_style, train_settings  # noqa: E402


def resolve_local_paths():
    """Relative data paths are read from the working directory, else from the workflow's folder, so that the
    embedded sample works with any --directory."""
    specs = [config["data"]["persons"].get(r) for r in ("forget", "retain", "general")]
    specs.append(config["data"]["truthfulqa"])
    for spec in specs:
        if spec and spec["source"] == "local" and not Path(spec["path"]).exists():
            shipped = Path(workflow.basedir) / spec["path"]
            if shipped.exists():
                spec["path"] = str(shipped)


FINAL_PRODUCTS = ("results/score/summary.parquet", "results/report/report.html", "results/report/report.md")


def remove_truncated_artifacts():
    """A truncated Parquet artifact (a crash below Snakemake's own bookkeeping, a full disk) is removed at
    start-up with a warning, together with the summary and report: Snakemake skips a missing intermediate whose
    consumers look up to date, but rebuilding the final products makes it remake the artifact and what follows."""
    truncated = sorted(p for p in Path("results").rglob("*.parquet") if not looks_complete(p))
    for path in truncated:
        logger.warning(f"truncated artifact {path}: removed, its stage will rerun")
        path.unlink()
    if truncated:
        for product in FINAL_PRODUCTS:
            Path(product).unlink(missing_ok=True)


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

    from unlearning.errors import InputError
    from unlearning.preflight import check_config

    try:
        for warning in check_config(config):
            logger.warning(f"config: {warning}")
    except InputError as exc:
        raise WorkflowError(str(exc)) from None


preflight()
remove_truncated_artifacts()
MODELS = list(config["models"])  # in the config's order, which the report keeps
VARIANTS = ["base", "unlearned"]
_canonical = sorted_keys(config)
config.clear()
config.update(_canonical)
TRAIN_RUNTIME_FACTOR = 2  # training gets twice the runtime a model entry gives its other heavy jobs



def model_resources(model):
    """mem_mb, runtime (minutes), gpu and threads of a model's heavy jobs, from its config entry."""
    return config["models"][model]["resources"]


def perturber_key():
    """The models: key of the perturber when it is one of the run's models, else None."""
    name = config["perturb"].get("model")
    return name if name in config["models"] else None


def perturber_inputs(wildcards):
    key = perturber_key()
    return {"model": f"results/models/{key}"} if key else {}


def local_data_files(wildcards):
    """Local data files of the run, so that editing one reruns prepare_data."""
    specs = [config["data"]["persons"].get(r) for r in ("forget", "retain", "general")]
    specs.append(config["data"]["truthfulqa"])
    return [s["path"] for s in specs if s and s["source"] == "local"]


def premade_inputs(wildcards):
    path = config["perturb"].get("premade")
    return {"premade": path} if path else {}


def adapter_inputs(wildcards):
    """The adapter of a model for the unlearned variant; nothing for base, which never waits on training."""
    if wildcards.variant == "unlearned":
        return {"adapter": f"results/train/{wildcards.model}/adapter"}
    return {}
