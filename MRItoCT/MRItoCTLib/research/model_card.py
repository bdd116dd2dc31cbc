"""The model card written beside every trained MRItoCT model, rendered from its metadata alone."""

from __future__ import annotations

from typing import Any

from CTSynthesisCore.model_cards import (closing_sections, cpu_hours, evaluation_sections, lineage_line, mean_model_line,
                                         source_lines)

from ..intensity import IntensityMapping

UNCERTAINTY_LIMITATION = {
    "diffusion": "The uncertainty ranks where samples disagree; it is not calibrated as an error bar.",
    "residual": "The uncertainty is the spread of the sampled residual only: where the mean network is wrong and the "
                "denoiser did not learn to correct it, the spread can be small.",
    "regression": "No uncertainty: a wrong value looks as confident as a right one.",
}
WHAT_IT_IS = {
    "diffusion": "A conditional diffusion model: each Monte-Carlo sample is a plausible CT for the MRI; their mean "
                 "is the synthetic CT and their per-voxel standard deviation the uncertainty.",
    "residual": "A residual diffusion model (CorrDiff-style): a frozen regression UNet gives the mean CT, and a "
                "conditional diffusion model, shown the MRI and that mean, samples what the mean misses; each "
                "Monte-Carlo sample is mean + residual, their mean the synthetic CT and their spread the uncertainty.",
    "regression": "A deterministic baseline, kept to compare the diffusion model against: one pass per slice gives "
                  "the synthetic CT, and its uncertainty output is zero everywhere (it has no notion of spread).",
}


def training_data(metadata: dict[str, Any]) -> str:
    training = metadata.get("training", {})
    cases = training.get("train_cases", [])
    phantoms = sum(name.startswith("phantom") for name in cases)
    return f"""Synthetic pairs, not real paired MRI/CT: `{training.get('data', 'not recorded')}`;
{len(cases)} training and {len(training.get('validation_cases', []))} validation cases, split by case (copies of
one CT share its split). {phantoms} of the training cases are digital pelvis phantoms made by `mritoct make-data`
(this project, Apache-2.0); the others are MRIs rendered by spin-echo physics from these real CTs:
{source_lines(cases)}{recipes_text(training)}"""


def value_range(value: Any) -> str:
    """'a-b' for a [low, high] pair (one number when equal), 'key a-b, ...' for a mapping, else the value."""
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {value_range(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]:g}" if value[0] == value[1] else f"{value[0]:g}-{value[1]:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def recipe_text(recipe: dict[str, Any] | None, folder: str = "") -> str:
    """The domain-randomisation ranges the CT-derived MRIs (of ``folder``, when given) were rendered with (as
    ``dataset.json`` records them)."""
    if not recipe:
        return ""
    tissues = "; ".join(f"{name.replace('_', ' ')} {value_range(ranges['proton_density'])}, "
                        f"{value_range(ranges['t1_ms'])}, {value_range(ranges['t2_ms'])}"
                        for name, ranges in recipe.get("tissues", {}).items())
    others = "; ".join(f"{key.replace('_', ' ')} {value_range(value)}" for key, value in recipe.items() if key != "tissues")
    of_folder = f" of `{folder}`" if folder else ""
    return (f"\n\nRendering recipe of the CT-derived MRIs{of_folder} (drawn per case within these ranges; "
            "`dataset.json`). "
            f"Tissues (proton density, T1 ms, T2 ms): {tissues}. Sequence, geometry and augmentation: {others}.")


def recipes_text(training: dict[str, Any]) -> str:
    """:func:`recipe_text` of the data's one recipe, or of the first folder's and what the others changed."""
    recipes = training.get("data_recipes") or {}
    if not recipes:
        return recipe_text(training.get("data_recipe"))
    (first_folder, first), *others = recipes.items()
    text = recipe_text(first, first_folder)
    for folder, recipe in others:
        changed = "; ".join(f"{key.replace('_', ' ')} {value_range(value)}" for key, value in recipe.items()
                            if first.get(key) != value)
        missing = ", ".join(key.replace("_", " ") for key in first if key not in recipe)
        text += (f" Those of `{folder}`: the same but {changed or 'nothing'}"
                 + (f", without {missing}" if missing else "") + ".")
    return text


def loss_weighting(config: dict[str, Any]) -> str:
    """The L1 bone weight of a regression run, when it is not plain L1."""
    weight = config.get("bone_weight", 1.0)
    return f", bone voxels weighted {weight:g} times in the L1 loss" if weight != 1.0 else ""


def model_card(metadata: dict[str, Any]) -> str:
    """Markdown model card from a model's metadata."""
    training = metadata.get("training", {})
    config = training.get("config", {})
    validation = metadata.get("validation", {})
    cost = metadata.get("cpu_cost", {})
    speed = (f"- Synthesis cost: {cost['seconds_per_megapixel']} s per megapixel network evaluation on a "
             f"{cost.get('measured_on', 'CPU')} (`{cost.get('command', '')}`); the panel's time estimate uses it."
             if "seconds_per_megapixel" in cost else "- Synthesis cost: not measured.")
    kind = metadata.get("kind", "diffusion")
    return f"""# Model card: {metadata['name']}

**{metadata.get('description', '')}** for MRI-to-CT synthesis (T2-weighted pelvis MRI -> CT in HU).
{WHAT_IT_IS.get(kind, '')}

## Intended use
Research use only: method development, teaching, and comparison of samplers and uncertainty estimates.
**Not for clinical decisions**, treatment planning or diagnosis. No regulatory clearance.
**Dosimetric accuracy has not been evaluated**: no dose was computed on these synthetic CTs.

## Out of scope
- Anatomy other than the male pelvis (abdomen, chest, head, female pelvis were not the target; the output
  there is not a CT, see the README's out-of-domain example).
- Sequences other than T2-weighted (turbo) spin echo: T1, Dixon, diffusion, contrast-enhanced images.
- Field strengths, coils and vendors were simulated, not sampled from real scanners; one real 3 T T2 was
  used for the region-of-interest check below.
- Metal implants (hip prostheses, seeds, fixation): their artefacts were not simulated.
- Children, and images with strong motion or fold-over artefacts.

## Input
A scalar MRI volume of any size and orientation (reoriented to axial), resampled in-plane to
{metadata.get('spacing_mm')} mm; each slice is synthesized with {metadata.get('network', {}).get('context_slices', 1)}
neighbouring slice(s) on each side as context; the output is returned on the input's own grid.
Intensities: {IntensityMapping.from_metadata(metadata).describe()}.

## Training data
{training_data(metadata)}

Real T2 images differ from these simulations (coil profiles, motion, fat-water shifts, anatomy variants).

## Model
- Network: `{kind}` — arguments in `metadata.json` (`network`).
{speed}

## Training record{lineage_line(training)}{mean_model_line(training)}
- Steps: {training.get('steps')}, batch {config.get('batch_size')}, crop {config.get('crop')} px,
  learning rate {config.get('learning_rate')}, seed {config.get('seed')}{loss_weighting(config)}.
- Time: {training.get('seconds')} s on {training.get('device')} ({training.get('device_reason', '')}); {cpu_hours(metadata):.2f}
  hours of training in all, earlier training (and a mean network's) included.
- Validation MAE: {validation.get('mae_hu')} HU on simulated validation slices ({validation.get('protocol', '')});
  a figure on simulated data, not a clinical accuracy.

## Results

{evaluation_sections(metadata)}
## Known limitations
- Trained on simulated MRI: bone marrow, urine and dark muscle are where real T2 contrast departs most from
  the simulation; check these regions first.
- {UNCERTAINTY_LIMITATION.get(kind, '')}
- Slices are synthesized in 2.5D: small steps between slices remain in coronal and sagittal views.

## How to retrain
```
mritoct make-data --out data/pelvis --cases 12 --seed 0 --from-ct CT1.nii.gz CT2.nii.gz --per-ct 20
mritoct train --data data/pelvis --model {metadata.get('method', 'ddpm')} --out runs/{metadata.get('method', 'ddpm')} --epochs 40
```
or on your own paired data in the SynthRAD task-1 layout (`<case>/mr.nii.gz`, `ct.nii.gz`, `mask.nii.gz`);
add `--init {metadata['name']}` to fine-tune these weights instead of starting from random ones.
On several GPUs: `torchrun --nproc_per_node N -m MRItoCTLib.cli train ...`.

{closing_sections(metadata, "mritoct")}"""
