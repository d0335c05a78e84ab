"""`qckit normalize IN... --method whitestripe|zscore|nyul -o OUTDIR`: MRI intensity normalization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from qckit.cli._common import console, handle_errors
from qckit.core.errors import QckitInputError


def _out_name(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)] + "_norm.nii.gz"
    return name + "_norm.nii.gz"


@handle_errors
def normalize_command(
    images: list[Path] = typer.Argument(..., help="NIfTI, NRRD or DICOM series folders."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (NIfTI, geometry preserved)."),
    method: str = typer.Option("whitestripe", "--method", "-m", help="whitestripe | zscore | nyul"),
    contrast: str = typer.Option("t1", "--contrast", help="t1 | t2 | flair (WhiteStripe mode choice)."),
    width: float = typer.Option(0.05, "--width", help="WhiteStripe quantile half-width."),
    mask: list[Path] = typer.Option([], "--mask", help="Mask per image (same order), or one for all."),
    landmarks: Path | None = typer.Option(
        None, "--landmarks", help="Nyul: load landmarks (else learn and save)."
    ),
    report: Path | None = typer.Option(None, "--report", help="HTML QC report."),
    bias_field: str = typer.Option("none", "--bias-field", help="none | n4: correct intensity non-uniformity "
                                   "(N4, SimpleITK) before normalizing."),
    n4_shrink: int = typer.Option(2, "--n4-shrink", min=1, help="N4: shrink factor of the field fit."),
    n4_iterations: str = typer.Option("50,50,50", "--n4-iterations", help="N4: iterations per fitting level."),
    n4_control_points: int = typer.Option(4, "--n4-control-points", min=4, help="N4: B-spline control points."),
    n4_mask: Path | None = typer.Option(None, "--n4-mask", help="N4: fit the field on this mask (default: the "
                                        "image's mask if given, else Otsu's foreground)."),
) -> None:  # fmt: skip
    """Normalize MR intensities; WhiteStripe's width, contrast and mask are honoured (not silently ignored)."""
    from qckit.core.provenance import Provenance, command_line
    from qckit.normalize import NyulStandardizer, as_array, read_image, whitestripe, write_nifti, zscore
    from qckit.report.normalize_report import write_report

    if method not in ("whitestripe", "zscore", "nyul"):
        raise QckitInputError(f"--method must be whitestripe, zscore or nyul, not '{method}'")
    if bias_field not in ("none", "n4"):
        raise QckitInputError(f"--bias-field must be none or n4, not '{bias_field}'")
    try:
        iterations = tuple(int(v) for v in n4_iterations.split(",") if v.strip())
    except ValueError:
        raise QckitInputError(
            f"--n4-iterations {n4_iterations!r}: integers separated by commas, e.g. 50,50,50"
        ) from None
    if mask and len(mask) not in (1, len(images)):
        raise QckitInputError(f"give one mask, or one per image ({len(images)}), not {len(mask)}")
    loaded = [read_image(p) for p in images]
    masks = [read_image(m) for m in mask] if mask else []
    masks = masks * len(images) if len(masks) == 1 else masks
    fields: list[Any] = [None] * len(loaded)
    if bias_field == "n4":
        from qckit.normalize import N4Settings, n4_correct

        settings = N4Settings(
            shrink_factor=n4_shrink, iterations=iterations, control_points=n4_control_points
        )
        fit_mask = read_image(n4_mask) if n4_mask else None
        for i, img in enumerate(loaded):
            loaded[i], fields[i] = n4_correct(img, fit_mask or (masks[i] if masks else None), settings)
            console.print(f"{images[i]}: N4 field {fields[i].field_range[0]:.3g}..{fields[i].field_range[1]:.3g} "
                          f"({fields[i].mask_voxels} voxels)", highlight=False)  # fmt: skip
    nyul = None
    if method == "nyul":
        nyul = (
            NyulStandardizer.load(landmarks)
            if landmarks and landmarks.exists()
            else NyulStandardizer().fit(loaded, masks or None)
        )
        saved = nyul.save(landmarks or output / "nyul_landmarks.json")
        console.print(f"Nyul landmarks: {saved}")
    items = []
    for i, (path, img) in enumerate(zip(images, loaded, strict=True)):
        msk = masks[i] if masks else None
        if method == "whitestripe":
            out, fit = whitestripe(img, msk, contrast=contrast, width=width)
            details = {
                **fit.to_dict(),
                "bin_centres": fit.bin_centres,
                "smoothed_histogram": fit.smoothed_histogram,
            }
        elif method == "zscore":
            out, details = zscore(img, msk)
        else:
            assert nyul is not None
            out, details = nyul.transform(img, msk), {}
        target = write_nifti(out, output / _out_name(path))
        arr, _ = as_array(img)
        sel = as_array(msk)[0] > 0 if msk is not None else arr > arr.mean()
        item = {"name": path.name, "before": arr[sel], "after": as_array(out)[0][sel], "fit": details}
        if fields[i] is not None:
            item["bias_field"] = fields[i]
        items.append(item)
        console.print(
            f"{path} -> {target}"
            + (
                f" (mode {details['mode']:.4g}, stripe mean {details['mean']:.4g}, SD {details['sd']:.4g})"
                if method == "whitestripe"
                else ""
            )
        )
    if report:
        prov = Provenance(command=command_line(), inputs={"images": len(images), "method": method})
        write_report(items, method, prov, report)
