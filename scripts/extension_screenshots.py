"""Write the extension's screenshots (Resources/Screenshots/<Module>.png) and the panel images of the docs
(docs/panel_<Module>.png): each panel as loaded offscreen by PySide6 (Slicer's own widgets appear as plain
placeholders), with its combo boxes and labels filled as the running panel fills them for the bundled
sample, beside a result the module produces (figures under docs/).

Usage: QT_QPA_PLATFORM=offscreen python scripts/extension_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = {"MRItoCT": ROOT / "docs" / "demo_montage.png", "SliceInterp": ROOT / "docs" / "sliceinterp_views_x2.png"}


def combo_items(module: str) -> dict[str, list[str]]:
    """What the running panel puts in its combo boxes (the catalogs, the shipped models, the Choice lists)."""
    from CTSynthesisCore.device import DEVICE_CHOICES, DEVICE_TITLES
    from CTSynthesisCore.weights import list_models
    from MRItoCTLib.catalog import DEFAULT_MODEL, PRESETS, SAMPLERS
    from SliceInterpLib.catalog import METHODS

    devices = [DEVICE_TITLES[device] for device in DEVICE_CHOICES]
    if module == "MRItoCT":
        models = [model["name"] for model in list_models("mritoct")]
        return {"samplerComboBox": [info.title for info in SAMPLERS.values()],
                "modelComboBox": [DEFAULT_MODEL] + [name for name in models if name != DEFAULT_MODEL],
                "presetComboBox": [preset.title for preset in PRESETS.values()] + ["Custom (see Advanced)"],
                "deviceComboBox": devices}
    return {"methodComboBox": list(METHODS), "deviceComboBox": devices}


def label_texts(module: str) -> dict[str, str]:
    """What the running panel writes into its labels for the bundled sample (device line, time estimate)."""
    import SimpleITK as sitk

    from CTSynthesisCore.device import describe_device_request
    from CTSynthesisCore.sample_data import sample_path
    from CTSynthesisCore.slicer.panel import model_summary
    from CTSynthesisCore.weights import list_models
    from MRItoCTLib.catalog import DEFAULT_MODEL, DEFAULT_PRESET, PRESETS
    from MRItoCTLib.estimate import estimate_run, volume_layout
    from SliceInterpLib.catalog import SAMPLE

    if module == "MRItoCT":
        image = sitk.ReadImage(str(sample_path("t2_pelvis")))
        model = next(m for m in list_models("mritoct") if m["name"] == DEFAULT_MODEL)
        preset = PRESETS[DEFAULT_PRESET]
        estimate = estimate_run(model, volume_layout(image.GetSize(), image.GetSpacing(), image.GetDirection()),
                                preset.sampler, preset.steps, preset.mc)
        return {"deviceLabel": describe_device_request("auto"), "estimateLabel": estimate.text(False),
                "modelSummaryLabel": model_summary(model)}
    spacing = sitk.ReadImage(str(sample_path(SAMPLE))).GetSpacing()[2]
    return {"deviceLabel": describe_device_request("auto"),
            "spacingSummaryLabel": f"Slice spacing {spacing:.4g} mm → {spacing / 2:.4g} mm (factor 2)."}


def render_panel(module: str, path: Path) -> None:
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QComboBox, QLabel

    from MRItoCTLib.catalog import DEFAULT_PRESET, PRESETS

    app = QApplication.instance() or QApplication([])
    handle = QFile(str(ROOT / module / "Resources" / "UI" / f"{module}.ui"))
    handle.open(QFile.ReadOnly)
    widget = QUiLoader().load(handle)
    for name, items in combo_items(module).items():
        combo = widget.findChild(QComboBox, name)
        combo.addItems(items)
        if PRESETS[DEFAULT_PRESET].title in items:  # the preset the default settings match
            combo.setCurrentText(PRESETS[DEFAULT_PRESET].title)
    for name, text in label_texts(module).items():
        widget.findChild(QLabel, name).setText(text)
    widget.resize(420, 820)
    widget.show()
    app.processEvents()
    widget.grab().save(str(path))


def compose(panel: Path, result: Path, title: str, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(13, 6.5), gridspec_kw={"width_ratios": [1, 2.2]})
    for axis, image in zip(axes, (panel, result)):
        axis.imshow(plt.imread(image))
        axis.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = ROOT / "Resources" / "Screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    titles = {"MRItoCT": "MRI to CT: panel, and T2 MRI -> synthetic CT -> uncertainty (research use only)",
              "SliceInterp": "Slice Interpolation: panel, and the views' predictions and disagreement"}
    for module, result in RESULTS.items():
        panel = ROOT / "docs" / f"panel_{module}.png"
        render_panel(module, panel)
        compose(panel, result, titles[module], folder / f"{module}.png")
        print(f"wrote {panel} and {folder / f'{module}.png'}")


if __name__ == "__main__":
    main()
