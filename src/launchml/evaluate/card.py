"""``MODEL_CARD.md``: intended use, data, metrics with intervals, limitations, privacy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from launchml.evaluate.report import Report


def model_card(r: Report) -> str:
    from launchml.evaluate.report import flatten

    pkg, task, c = r.pkg, r.task, r.card_parts
    meta = pkg.meta
    inputs = ", ".join(f"{col.name} ({col.type})" for col in pkg.schema.inputs)
    target = meta["provenance"].get("config", {}).get("data", {}).get("target") or "the label"
    what = {"regression": f"the value of {target}",
            "multilabel": f"which of the labels {', '.join(task.labels)} apply",
            }.get(task.name, f"{target}: one of {', '.join(map(str, task.labels[:20]))}")
    lines = [f"# Model card: {r.run.root.name}", "",
             "## Intended use", "",
             f"Predicts {what} ({task.name}) from {inputs}. It is meant to support a person's "
             "decision on inputs like its training data; it has not been validated on other "
             "populations, sources or time periods, and should not decide alone where a "
             "mistake harms someone.", "",
             "## Model", "",
             "- members: " + ", ".join(f"{m['family']} (weight {m['weight']:.3g})"
                                       for m in meta["model"]["members"]),
             f"- package format {meta['format_version']}, created "
             f"{meta['provenance'].get('created', '?')}"]
    if pkg.threshold is not None:
        lines.append(f"- decision threshold {pkg.threshold:.4g} on the positive probability")
    lines += ["", "## Data", ""]
    for split, n in c.get("sizes", {}).items():
        lines.append(f"- {split}: {n} rows")
    for w in c.get("data_warnings", []):
        lines.append(f"- warning: {w}")
    lines += ["", "## Metrics", ""]
    if "headline" in c:
        name, value, lo, hi = c["headline"]
        lines.append(f"- {name} on the {r.split} split: **{value:.4f}** "
                     f"(95% bootstrap interval {lo:.4f} - {hi:.4f}, {len(r.y)} rows)")
    if "baseline" in c:
        lines.append(f"- baseline ({c['baseline'][0]}): {c['baseline'][1]:.4f}")
    if "ece" in c:
        lines.append(f"- expected calibration error: {c['ece']:.4f}")
    if c.get("importance"):
        lines.append("- most important inputs (mean |contribution|): " + ", ".join(
            f"{k} ({v:.3g})" for k, v in c["importance"]))
    if c.get("variants"):
        rows, picked = c["variants"]
        lines.append(f"- optimized variants: {', '.join(str(v.get('variant')) for v in rows)}"
                     + (f"; served: {picked}" if picked else ""))
    lines += ["", "## Limitations", ""]
    limits = list(c.get("warnings", []))
    if not c.get("beats", True):
        limits.append("It does not beat the trivial baseline on the scored split.")
    worst = c.get("worst_slice")
    if worst:
        metric = [k for k in worst if k not in ("slice", "value", "rows")][0]
        limits.append(f"Weakest slice: {worst['slice']} = {worst['value']} ({worst['rows']} "
                      f"rows, {metric} {worst[metric]:.4f}).")
    limits.append("Scores hold for data drawn like the training data; re-evaluate on new data "
                  "(`launchml evaluate <package> --data <labelled data>`) before relying on "
                  "it elsewhere.")
    lines += [f"- {x}" for x in limits]
    privacy = c.get("privacy")
    lines += ["", "## Privacy", ""]
    if privacy:
        lines += [f"- {k}: {v}" for k, v in flatten(privacy).items()]
    else:
        lines.append("- trained without differential privacy settings (none recorded)")
    return "\n".join(lines) + "\n"
