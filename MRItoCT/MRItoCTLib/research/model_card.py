"""The model card written beside every trained MRItoCT model."""

from __future__ import annotations

from typing import Any

from ..intensity import IntensityMapping


def model_card(metadata: dict[str, Any]) -> str:
    """Markdown model card from a model's metadata."""
    training = metadata.get("training", {})
    config = training.get("config", {})
    validation = metadata.get("validation", {})
    parent = training.get("initialised_from")
    lineage = (f"\n- Initialised from `{parent['model']}` (sha256 {str(parent.get('sha256'))[:12]}..., {parent.get('steps')} "
               f"steps, {parent.get('seconds')} s of earlier training), then trained as below." if parent else "")
    return f"""# Model card: {metadata['name']}

**{metadata.get('description', '')}** for MRI-to-CT synthesis (T2-weighted pelvis MRI -> CT in HU).

## Intended use
Research use only: method development, teaching, and comparison of samplers and uncertainty estimates.
**Not for clinical decisions**, treatment planning or diagnosis. No regulatory clearance.

## Training data
Trained on **synthetic paired data** made by `mritoct make-data` (digital pelvis phantoms with spin-echo
T2 physics, plus MRI rendered from real CT volumes by the same physics), not on real paired MRI/CT.
Data folder: `{training.get('data', '?')}`; {len(training.get('train_cases', []))} training and
{len(training.get('validation_cases', []))} validation cases (split by case).
Real T2 images differ from these simulations (coil profiles, motion, fat-water shifts, anatomy variants);
expect errors on real scans, especially in bone and air/gas.

## Model
- Network: `{metadata.get('kind')}` — arguments in `metadata.json` (`network`).
- In-plane spacing: {metadata.get('spacing_mm')} mm (inputs are resampled, outputs returned on the input grid).
- Intensities: {IntensityMapping.from_metadata(metadata).describe()}.

## Training record{lineage}
- Steps: {training.get('steps')}, batch {config.get('batch_size')}, crop {config.get('crop')} px,
  learning rate {config.get('learning_rate')}, seed {config.get('seed')}.
- Time: {training.get('seconds')} s on {training.get('device')} ({training.get('device_reason', '')}).
- Validation MAE: {validation.get('mae_hu')} HU ({validation.get('protocol', '')}).

## How to retrain
```
mritoct make-data --out data/pelvis --cases 36 --seed 0 --from-ct CT1.nii.gz CT2.nii.gz
mritoct train --data data/pelvis --model {metadata.get('method', 'ddpm')} --out runs/{metadata.get('method', 'ddpm')} --epochs 40
```
or on your own paired data in the SynthRAD task-1 layout (`<case>/mr.nii.gz`, `ct.nii.gz`, `mask.nii.gz`);
add `--init {metadata['name']}` to fine-tune these weights instead of starting from random ones.
On several GPUs: `torchrun --nproc_per_node N -m MRItoCTLib.cli train ...`.

## Checksum
The weights file's sha256 is recorded in `metadata.json` and verified on every load.
"""
