"""The shipped MRItoCT models load with checksum verification and turn the real T2 sample into CT-like values."""

from pathlib import Path

import pytest
import SimpleITK as sitk

from CTSynthesisCore.weights import list_models, read_metadata, resolve_model_folder, sha256_file
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.settings import SynthesisSettings

SHIPPED = ["mritoct-residual", "mritoct-ddpm", "mritoct-cnn", "mritoct-gan"]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_has_card_metadata_and_matching_checksum(name):
    folder = resolve_model_folder(name)
    assert folder.parent == REPO / "model_weights"
    metadata = read_metadata(folder)
    assert sha256_file(folder / metadata["weights_file"]) == metadata["sha256"]
    for key in ("network", "spacing_mm", "intensity", "training", "validation", "description"):
        assert key in metadata, key
    assert metadata["training"]["device"] in ("cpu", "cuda") and metadata["training"]["seconds"] > 0
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "Research use only" in card and "not for clinical" in card.lower() and "synthetic" in card
    assert name in [m["name"] for m in list_models("mritoct")]


def test_all_weights_together_stay_small():
    total = sum(p.stat().st_size for p in (REPO / "model_weights").rglob("*.pt"))
    assert total < 30 * 2**20


@pytest.fixture(scope="module")
def t2_centre(t2_sample) -> sitk.Image:
    return sitk.ReadImage(str(t2_sample))[:, :, 8:11]


@pytest.mark.parametrize("name,settings", [
    ("mritoct-residual", SynthesisSettings(sampler="dpmpp", steps=10, mc=2, seed=0)),
    ("mritoct-ddpm", SynthesisSettings(sampler="dpmpp", steps=10, mc=2, seed=0)),
    ("mritoct-cnn", SynthesisSettings()),
    ("mritoct-gan", SynthesisSettings()),
])
def test_shipped_model_makes_ct_like_values_from_the_real_t2(t2_centre, name, settings):
    """Inside the body: mostly soft tissue (-150..150 HU) with some fat below -30 (and, diffusion, bone above 300 HU)."""
    result = synthesize(t2_centre, load_model(name), settings, device="cpu")
    hu = sitk.GetArrayFromImage(result.ct)
    body = hu > -900
    assert body.mean() > 0.5, "the field of view is inside the patient"
    inside = hu[body]
    soft = float(((inside > -150) & (inside < 150)).mean())
    assert soft > 0.4, f"soft-tissue share {soft:.2f}"
    assert float((inside < -30).mean()) > 0.02, "fat (negative HU) should appear"
    if name in ("mritoct-residual", "mritoct-ddpm"):  # the shipped baselines give no bone on this real image
        assert float((inside > 300).mean()) > 0.005, "bone (femoral heads, pelvis) should appear"
        assert float(sitk.GetArrayFromImage(result.uncertainty)[body].mean()) > 0


def test_the_default_warns_on_an_abdominal_t2_and_not_on_the_pelvis(t2_sample):
    """The hip-bone check on real images, as the demo runs them: the default's synthetic CT of the whole bundled
    pelvis T2 shows the femoral heads (in 1 of its 19 slices, docs/mritoct.md); that of the bundled upper-abdominal
    T2 (a NIfTI file: no header to warn from) shows only the spine."""
    from CTSynthesisCore.sample_data import sample_path
    from MRItoCTLib.anatomy import NO_HIP_BONES

    model, settings = load_model("mritoct-residual"), SynthesisSettings()  # as users run it: MC 4, flips, shifts
    pelvis = synthesize(sitk.ReadImage(str(t2_sample)), model, settings, device="cpu")
    assert not [w for w in pelvis.warnings if w.startswith(NO_HIP_BONES)], pelvis.warnings
    abdomen = synthesize(sitk.ReadImage(str(sample_path("mr_abdomen"))), model, settings, device="cpu")
    assert [w for w in abdomen.warnings if w.startswith(NO_HIP_BONES)], abdomen.warnings
