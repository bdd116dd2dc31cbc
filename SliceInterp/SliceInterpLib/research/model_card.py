"""The model card written beside every trained SliceInterp model."""

from __future__ import annotations

from typing import Any

from CTSynthesisCore.model_cards import closing_sections, cpu_hours, evaluation_sections, lineage_line, source_lines

from ..crossview import VIEW_NAMES


def planes_text(network: dict[str, Any]) -> str:
    """What the coronal/sagittal network sees besides its own plane (2.5D), from ``planar_context``."""
    context = network.get("planar_context", 0)
    return f" (2.5D: also {context} parallel plane(s) on each side)" if context else ""


def fusion_text(network: dict[str, Any]) -> str:
    """How the views' slices make the output, from the network's ``view_weights`` (equal when absent)."""
    weights = network.get("view_weights", [1 / 3] * 3)
    if max(weights) - min(weights) < 1e-9:
        return "the mean of the three views; their standard deviation is the disagreement volume."
    shares = ", ".join(f"{name} {weight / sum(weights):.2f}" for name, weight in zip(VIEW_NAMES, weights))
    return (f"the views' mean weighted {shares} (a view of weight 0 is trained but not run); the standard "
            "deviation of the views run is the disagreement volume.")


def model_card(metadata: dict[str, Any]) -> str:
    """Markdown model card from a model's metadata."""
    training = metadata.get("training", {})
    config = training.get("config", {})
    scores = metadata.get("validation", {}).get("scores", {})
    score_lines = "\n".join(f"| {name} | {s['linear_db']} | {s['crossview_db']} |" for name, s in scores.items())
    volumes = ", ".join(path.replace("\\", "/").rsplit("/", 1)[-1] for path in training.get("volumes", []))
    other_factors = ("any other factor or spacing takes the networks at each new slice's position in its gap "
                     "(position input)." if metadata.get("network", {}).get("position_input")
                     else "other factors resample the finest level linearly (no position input).")
    inplane = (f"\n- In-plane restoration weight {config['inplane_weight']} (row thickness "
               f"{config.get('inplane_scale', 'volume')}, profile {config.get('inplane_profile', 'box')})."
               if config.get("inplane_weight") else "")
    augmentation = (f"\n- Intensity augmentation: HU scaled about water by 1 +- {config.get('augment_contrast', 0)}, "
                    f"Gaussian noise up to {config.get('augment_noise_hu', 0)} HU."
                    if config.get("augment_contrast") or config.get("augment_noise_hu") else "")
    return f"""# Model card: {metadata['name']}

**{metadata.get('description', '')}** for raising the between-slice resolution of CT volumes
(Fang et al., CVPR 2022: incremental cross-view mutual distillation).

## Intended use
Research use only: method development, teaching, and comparison with classical interpolation.
**Not for clinical decisions** or diagnosis; interpolated slices are estimates, not measurements.
No regulatory clearance. Measurements on the new slices (volumes, distances, dose) have not been evaluated.

## Out of scope
- Images other than CT in HU (MRI, PET, CBCT with its own artefacts).
- Slice spacings far from the training volumes' (listed under Training data) and factors above 8.
- Volumes whose slices are not evenly spaced, or gantry-tilted series not resampled to a regular grid.

## Input
A scalar CT volume in HU with at least three slices along its third voxel axis; a factor 2-8 or a target
slice spacing; the output keeps the in-plane grid and the observed slices, and adds slices between them.

## Training data
Self-supervised: targets are only slices of the training volumes themselves (every other slice dropped
and restored) and, on the {config.get('distill_levels', 1)} finer level(s) above them (x2, x4, ...), the views'
agreeing predictions (mutual distillation). No thin-slice ground truth was used. Volumes: {volumes or '?'}.
{source_lines(training.get('volumes', []))}

The thin chest CT shipped as `Resources/SampleData/totalseg_aorta_ct_1p5mm.nii.gz` was held out for evaluation.
Expect the network to be weaker on anatomy, contrast phases, reconstruction kernels and slice spacings far
from these; `--adapt` fine-tunes it on the volume being processed.

## Model
- Networks: axial (2 x neighbours observed slices -> middle slice) and one shared coronal/sagittal network{planes_text(metadata.get('network', {}))},
  both MONAI 2D UNets predicting residuals over linear interpolation; arguments in `metadata.json` (`network`).
- Intensities: {metadata.get('intensity', '')}.
- Output: {fusion_text(metadata.get('network', {}))} Observed
  slices pass through unchanged. Factor 2^n takes n levels; {other_factors}

## Training record{lineage_line(training)}
- Steps: {training.get('steps')}, block {config.get('block_slices')} slices x {config.get('block_size')} px,
  learning rate {config.get('learning_rate')}, distillation weight {config.get('distill_weight')} on the
  {config.get('distill_keep')} most consistent voxels, seed {config.get('seed')}.{inplane}{augmentation}
- Time: {training.get('seconds')} s on {training.get('device')}; {cpu_hours(metadata):.2f} hours of training in all,
  earlier training included.

Restoring every other slice of each training volume (PSNR, dB; HU + 1024 clipped to [0, 4000]):

| volume | linear | cross-view |
|---|---|---|
{score_lines}

## Results

{evaluation_sections(metadata)}
## Known limitations
- Trained on {len(training.get('volumes', []))} CT(s): its gain over classical interpolation on unseen thin CTs is in the results above.
- New slices are estimates: small structures that lie between observed slices cannot be recovered.
- The disagreement ranks where the views differ; it is not calibrated as an error bar.

## How to retrain
```
sliceinterp train --data CT1.nii.gz CT2.nii.gz --out runs/crossview --steps 3000
```
Any folder of CT volumes works (no thin-slice data needed).

{closing_sections(metadata, "sliceinterp")}"""
