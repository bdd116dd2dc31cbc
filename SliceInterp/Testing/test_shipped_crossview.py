"""The shipped cross-view model: verified loading and quality on the held-out thin CT (never trained on)."""

import unittest

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.sample_data import sample_path
from CTSynthesisCore.weights import read_metadata, resolve_model_folder, sha256_file
from SliceInterpLib.classical import upsample_classical
from SliceInterpLib.research.evaluation import removed_slice_scores, thick_from_thin
from SliceInterpLib.catalog import DEFAULT_MODEL
from SliceInterpLib.model import load_crossview
from SliceInterpLib.upsample import upsample
from SliceInterpLib.settings import UpsampleSettings


def test_shipped_model_is_verified_and_documented():
    folder = resolve_model_folder(DEFAULT_MODEL)
    metadata = read_metadata(folder)
    assert sha256_file(folder / metadata["weights_file"]) == metadata["sha256"]
    assert (folder / "MODEL_CARD.md").read_text(encoding="utf-8").count("Not for clinical decisions") == 1
    assert not any("aorta" in path for path in metadata["training"]["volumes"]), "the evaluation CT must stay held out"
    network, _ = load_crossview()
    assert sum(p.numel() for p in network.parameters()) < 2_000_000
    assert network.config.position_input, "any factor goes through the networks (docs/sliceinterp.md)"


def test_shipped_model_beats_linear_on_the_held_out_thin_ct():
    thin = sitk.ReadImage(str(sample_path("ct_chest_thin_1p5mm")))
    reference, thick = thick_from_thin(thin, 2)
    truth = sitk.GetArrayFromImage(reference)
    crossview = upsample(thick, reference.GetSpacing()[2], UpsampleSettings(device="cpu"))
    linear = upsample_classical(thick, reference.GetSpacing()[2], "linear")
    gain = (removed_slice_scores(sitk.GetArrayFromImage(crossview.image), truth, 2)["psnr"]
            - removed_slice_scores(sitk.GetArrayFromImage(linear), truth, 2)["psnr"])
    assert gain > 0.3, f"cross-view only {gain:.2f} dB above linear"
    spread = sitk.GetArrayViewFromImage(crossview.disagreement)
    assert spread.min() >= 0 and np.all(spread[::2] == 0) and spread[1::2].mean() > 0


def test_slicer_scenario_with_the_shipped_model(mrml_scene):
    from SliceInterpLib.slicer.scenarios import run_upsample_scenario

    image = sitk.ReadImage(str(sample_path("ct_abdomen_pelvis_3mm")))[:, :, 40:60]
    run_upsample_scenario(mrml_scene, unittest.TestCase(), image=image, factor=2, method="crossview")
