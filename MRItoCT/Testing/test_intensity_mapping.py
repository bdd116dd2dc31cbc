"""One versioned intensity mapping per model, stored in its metadata and read back by load_model: a model trained
with another mapping is handled (its own numbers are used) or refused (an unknown version), never mis-scaled."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from CTSynthesisCore.errors import UserInputError
from MRItoCTLib.intensity import DEFAULT_INTENSITY, IntensityMapping


def test_the_mapping_inverts_itself():
    hu = np.array([-1024.0, -100.0, 0.0, 40.0, 1500.0, 3000.0])
    np.testing.assert_allclose(DEFAULT_INTENSITY.unit_to_hu(DEFAULT_INTENSITY.hu_to_unit(hu)), hu, atol=1e-9)
    assert DEFAULT_INTENSITY.unit_std_to_hu(2.0) == DEFAULT_INTENSITY.hu_range


def test_models_saved_before_versioning_read_as_version_1():
    legacy = {"name": "old", "mri_percentile": 99.0,
              "intensity": {"ct": "HU clipped to [-1024, 3000] mapped linearly to [-1, 1]", "mri": "..."}}
    assert IntensityMapping.from_metadata(legacy) == IntensityMapping(mri_percentile=99.0)


def test_an_unknown_version_is_refused():
    with pytest.raises(UserInputError, match="intensity mapping"):
        IntensityMapping.from_metadata({"name": "future", "intensity": {**DEFAULT_INTENSITY.to_dict(), "version": 2}})


def test_load_model_uses_the_mapping_the_model_was_trained_with(tmp_path, tiny_model, t2_sample):
    """The same weights with a CT range twice as wide give CT numbers on that range: the mapping travels with the
    model instead of living in a constant."""
    import SimpleITK as sitk

    from MRItoCTLib.model import load_model
    from MRItoCTLib.pipeline import synthesize
    from MRItoCTLib.settings import SynthesisSettings

    wide = tmp_path / "wide"
    shutil.copytree(tiny_model, wide)
    metadata = json.loads((wide / "metadata.json").read_text())
    mapping = IntensityMapping(hu_min=-2048.0, hu_max=6000.0)
    metadata["intensity"] = mapping.to_dict()
    (wide / "metadata.json").write_text(json.dumps(metadata))
    assert load_model(str(wide)).intensity == mapping
    mri = sitk.ReadImage(str(t2_sample))[100:148, 100:148, 10:12]
    settings = SynthesisSettings(sampler="ddim", steps=2, mc=1)
    narrow_hu = sitk.GetArrayFromImage(synthesize(mri, load_model(str(tiny_model)), settings, device="cpu").ct)
    wide_hu = sitk.GetArrayFromImage(synthesize(mri, load_model(str(wide)), settings, device="cpu").ct)
    inside = narrow_hu > -1024
    unit = DEFAULT_INTENSITY.hu_to_unit(narrow_hu[inside])
    np.testing.assert_allclose(wide_hu[inside], mapping.unit_to_hu(unit), atol=0.05)


def test_sliceinterp_refuses_a_model_of_another_scale(tmp_path, tiny_crossview_model):
    from SliceInterpLib.model import load_crossview

    other = tmp_path / "other"
    shutil.copytree(tiny_crossview_model, other)
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["intensity"]["scale"] = 500.0
    (other / "metadata.json").write_text(json.dumps(metadata))
    load_crossview(tiny_crossview_model)
    with pytest.raises(UserInputError, match="intensity scale"):
        load_crossview(str(other))
