"""Shared pytest fixtures: a real MRML scene (slicer-core), a tiny trained MRItoCT model, sample paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk


def pytest_addoption(parser):
    parser.addoption("--screenshots", default=os.environ.get("CTSYNTHESIS_SCREENSHOTS"),
                     help="folder to save a PNG screenshot of each module panel (or env CTSYNTHESIS_SCREENSHOTS)")


@pytest.fixture
def screenshot_dir(request) -> Path | None:
    folder = request.config.getoption("--screenshots")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return None


@pytest.fixture
def mrml_scene():
    """A real vtkMRMLScene, installed as ``slicer.mrmlScene`` so ``slicer.util`` helpers work."""
    slicer = pytest.importorskip("slicer")
    scene = slicer.vtkMRMLScene()
    for node_class in (slicer.vtkMRMLSequenceBrowserNode, slicer.vtkMRMLColorLegendDisplayNode):
        scene.RegisterNodeClass(node_class())  # registered by Slicer's Sequences and Colors modules
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = scene
    yield scene
    scene.Clear(1)
    slicer.mrmlScene = previous


@pytest.fixture
def panel(monkeypatch, mrml_scene):
    """Open a module's panel (module, widget setup(), enter()) in this process through
    ``Testing/slicer_app_double.py``; its scene observers are removed (as Slicer's module unload does) and
    everything else restored after the test."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "Testing"))
    import slicer_app_double

    monkeypatch.setattr(slicer_app_double, "VALUES", {})  # parameter values start from the defaults in each test
    opened = []

    def open_(module: str, major: int = 5, minor: int = 10):
        loaded, widget, shown = slicer_app_double.open_panel(module, major, minor, monkeypatch=monkeypatch,
                                                             scene=mrml_scene)
        opened.append(widget)
        return loaded, widget, shown
    yield open_
    for widget in opened:
        widget.removeObservers()


@pytest.fixture(scope="session")
def t2_sample() -> Path:
    from CTSynthesisCore.sample_data import sample_path

    return sample_path("t2_pelvis")


def _abdomen_with_iodine(aorta_hu: float = 200.0, liver_hu: float = 115.0) -> sitk.Image:
    """Muscle (55 HU with CT noise) with a vertebra (1,000 HU cortex around 250 HU marrow), an aorta beside it at
    ``aorta_hu`` and a liver at ``liver_hu`` (115 HU: portal-venous enhancement), in fat, 1 x 1 x 3 mm."""
    _, y, x = np.mgrid[0:8, 0:96, 0:96]
    hu = np.where((y - 48) ** 2 / 40 ** 2 + (x - 48) ** 2 / 44 ** 2 < 1, 55.0, -100.0)
    hu += np.random.default_rng(0).normal(0.0, 12.0, hu.shape)
    vertebra = (y - 65) ** 2 + (x - 48) ** 2
    hu = np.where(vertebra < 11 ** 2, 1000.0, hu)
    hu = np.where(vertebra < 9 ** 2, 250.0, hu)
    hu = np.where((y - 45) ** 2 + (x - 60) ** 2 < 7 ** 2, aorta_hu, hu)
    hu = np.where((y - 35) ** 2 + (x - 30) ** 2 < 12 ** 2, liver_hu, hu)
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    image.SetSpacing((1.0, 1.0, 3.0))
    return image


@pytest.fixture(scope="session")
def contrast_ct():
    """A small contrast-enhanced abdomen (enhanced aorta and liver beside a vertebra): call it with their HU."""
    return _abdomen_with_iodine


@pytest.fixture(scope="session")
def ct_sample() -> Path:
    from CTSynthesisCore.sample_data import sample_path

    return sample_path("ct_abdomen_pelvis_3mm")


def _names_for(split: str, count: int) -> list[str]:
    """``count`` case names that fall in ``split``."""
    from MRItoCTLib.research.dataset import split_of

    names, index = [], 0
    while len(names) < count:
        name = f"case_{index:04d}"
        if split_of(name) == split:
            names.append(name)
        index += 1
    return names


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, ct_sample):
    """Five CT-derived cases (3 train, 1 validation, 1 test) from crops of the shipped CT sample."""
    from CTSynthesisCore.volume_io import write_volume
    from MRItoCTLib.research.ct_pairs import pair_from_ct

    root = tmp_path_factory.mktemp("pairs")
    ct = sitk.ReadImage(str(ct_sample))
    names = _names_for("train", 3) + _names_for("validation", 1) + _names_for("test", 1)
    for index, name in enumerate(names):
        crop = ct[10:110, 5:95, 20 + 12 * index: 44 + 12 * index]
        mri, hu, mask = pair_from_ct(crop, np.random.default_rng(index))
        (root / name).mkdir()
        write_volume(mri, root / name / "mr.nii.gz")
        write_volume(hu, root / name / "ct.nii.gz")
        write_volume(mask, root / name / "mask.nii.gz")
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, ct_sample) -> Path:
    """A very small conditional denoiser trained for a few steps on CT slices, saved as a model folder.

    It exercises the real training and loading path; its output quality is not tested.
    """
    import torch

    from MRItoCTLib.intensity import DEFAULT_INTENSITY
    from MRItoCTLib.model import save_model
    from MRItoCTLib.network import ConditionalDenoiser, DenoiserConfig, diffusion_loss

    torch.manual_seed(0)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_sample)))[40:70, :96, :96].astype(np.float32)
    ct_unit = torch.from_numpy(DEFAULT_INTENSITY.hu_to_unit(ct))[:, None]
    mri_like = torch.clamp(1.0 - (ct_unit + 0.5).abs() * 2.0, -1.0, 1.0)  # any fixed map: this is a smoke model
    config = DenoiserConfig(channels=(8, 16), attention_levels=(False, False), norm_num_groups=4,
                            num_head_channels=8, context_slices=1)
    network = ConditionalDenoiser(config)
    condition = torch.cat([mri_like, mri_like, mri_like], dim=1)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for step in range(5):
        batch = slice(4 * step, 4 * step + 4)
        loss = diffusion_loss(network, ct_unit[batch], condition[batch], generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    network.eval()
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(folder, network, {"name": "tiny-test", "spacing_mm": [3.0, 3.0], "description": "smoke-test model"})
    return folder


@pytest.fixture(scope="session")
def tiny_crossview_model(tmp_path_factory) -> str:
    """A very small cross-view model folder (random weights) for the node, worker and reliability tests."""
    import torch

    from SliceInterpLib.model import save_crossview
    from SliceInterpLib.networks import CrossViewConfig, CrossViewNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-crossview"
    save_crossview(folder, CrossViewNet(CrossViewConfig(channels=(4, 8), strides=(2,))), {"name": "tiny-crossview"})
    return str(folder)


def _oblique_anisotropic(image: sitk.Image, degrees: float = 20.0) -> sitk.Image:
    """A copy of ``image`` with an oblique direction and anisotropic spacing (same voxels)."""
    copy = sitk.Image(image)
    angle = np.deg2rad(degrees)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    rotation = rotation @ np.array([[np.cos(angle / 2), -np.sin(angle / 2), 0], [np.sin(angle / 2), np.cos(angle / 2), 0], [0, 0, 1]])
    copy.SetDirection(tuple(rotation.flatten()))
    copy.SetSpacing((0.7, 0.9, 2.5))
    copy.SetOrigin((12.5, -40.25, 7.0))
    return copy


@pytest.fixture
def make_oblique():
    """Function turning an image into an oblique, anisotropic copy."""
    return _oblique_anisotropic
