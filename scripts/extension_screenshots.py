"""Write the extension's screenshots (Resources/Screenshots/<Module>.png): each panel as loaded offscreen by
PySide6 (Slicer's own widgets appear as plain placeholders), with its combo boxes filled as the running
panel fills them, beside a result the module produces (figures under docs/).

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
    from CTSynthesisCore.device import DEVICE_CHOICES
    from CTSynthesisCore.weights import list_models
    from MRItoCTLib.catalog import SAMPLERS
    from SliceInterpLib.catalog import METHODS

    if module == "MRItoCT":
        return {"samplerComboBox": [info.title for info in SAMPLERS.values()],
                "modelComboBox": [model["name"] for model in list_models("mritoct")],
                "deviceComboBox": list(DEVICE_CHOICES)}
    return {"methodComboBox": list(METHODS)}


def render_panel(module: str, path: Path) -> None:
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QComboBox

    app = QApplication.instance() or QApplication([])
    handle = QFile(str(ROOT / module / "Resources" / "UI" / f"{module}.ui"))
    handle.open(QFile.ReadOnly)
    widget = QUiLoader().load(handle)
    from MRItoCTLib.catalog import DEFAULT_MODEL

    for name, items in combo_items(module).items():
        combo = widget.findChild(QComboBox, name)
        combo.addItems(items)
        if DEFAULT_MODEL in items:  # the panel selects the parameter node's model
            combo.setCurrentText(DEFAULT_MODEL)
    widget.resize(420, 720)
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
        panel = folder / f"{module}_panel.png"
        render_panel(module, panel)
        compose(panel, result, titles[module], folder / f"{module}.png")
        panel.unlink()
        print(f"wrote {folder / f'{module}.png'}")


if __name__ == "__main__":
    main()
