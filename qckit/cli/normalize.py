"""`qckit normalize IN... --method whitestripe|zscore|nyul -o OUTDIR`: MRI intensity normalization."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    EXIT_INPUT_ERROR,
    QUIET,
    VERBOSE,
    console,
    err_console,
    handle_errors,
    progress_bar,
)
from qckit.core.errors import QckitError, QckitInputError


def _stem(name: str) -> str:
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def output_names(images: list[Path], output: Path) -> list[Path]:
    """One output per input, unique: `<stem>_norm.nii.gz` under OUT, in the input's folder relative to the
    inputs' common folder (`STS_001/MR_T1_image.nii.gz` -> `OUT/STS_001/MR_T1_image_norm.nii.gz`)."""
    resolved = [p.resolve() for p in images]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved])) if resolved else Path(".")
    outs = [output / p.parent.relative_to(common) / f"{_stem(p.name)}_norm.nii.gz" for p in resolved]
    seen: dict[Path, Path] = {}
    for src, out in zip(images, outs, strict=True):
        if out in seen:
            raise QckitInputError(
                f"{src} and {seen[out]} would both be written to {out}; give each input once"
            )
        seen[out] = src
    return outs


@handle_errors
def normalize_command(
    images: list[Path] = typer.Argument(..., help="NIfTI, NRRD or DICOM series folders."),
    output: Path = typer.Option(..., "--output-dir", "-o", metavar="DIR", help="Output folder (NIfTI, geometry "
                                "preserved)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Per image: input, output, fit "
                                         "(WhiteStripe mode, stripe mean and SD) or the reason it failed."),
    method: str = typer.Option("whitestripe", "--method", "-m", help="whitestripe | zscore | nyul"),
    contrast: str = typer.Option("t1", "--contrast", help="t1 | t2 | flair (WhiteStripe mode choice)."),
    width: float = typer.Option(0.05, "--width", help="WhiteStripe quantile half-width."),
    mask: list[Path] = typer.Option([], "--mask", help="Mask per image (same order), or one for all."),
    landmarks: Path | None = typer.Option(
        None, "--landmarks", help="Nyul: load landmarks (else learn and save)."
    ),
    report: Path | None = typer.Option(None, "--report", metavar="FILE", help="HTML QC report."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that exist already."),
    max_voxels: int | None = typer.Option(None, "--max-voxels", min=1, help="Largest image read (default: what "
                                          "the available memory holds)."),
    bias_field: str = typer.Option("none", "--bias-field", help="none | n4: correct intensity non-uniformity "
                                   "(N4, SimpleITK) before normalizing."),
    n4_shrink: int = typer.Option(2, "--n4-shrink", min=1, help="N4: shrink factor of the field fit."),
    n4_iterations: str = typer.Option("50,50,50", "--n4-iterations", help="N4: iterations per fitting level."),
    n4_control_points: int = typer.Option(4, "--n4-control-points", min=4, help="N4: B-spline control points."),
    n4_mask: Path | None = typer.Option(None, "--n4-mask", help="N4: fit the field on this mask (default: the "
                                        "image's mask if given, else Otsu's foreground)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Normalize MR intensities; WhiteStripe's width, contrast and mask are honoured (not silently ignored)."""
    from qckit.core.provenance import Provenance, command_line
    from qckit.normalize import NyulStandardizer, as_array, read_image, whitestripe, write_nifti, zscore
    from qckit.normalize.image import check_finite
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
    targets = output_names(images, output)
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise QckitInputError(f"{len(existing)} output(s) exist already, e.g. {existing[0]}: pass --overwrite "
                              "to replace them (nothing was written)")  # fmt: skip
    failed: dict[str, str] = {}

    def attempt(path: Path, fn):  # noqa: ANN001, ANN202 - one image's step; a failure is that image's only
        try:
            return fn()
        except QckitError as exc:
            failed[str(path)] = str(exc)
            err_console.print(f"failed {path}: {exc}", highlight=False, markup=False)
            return None

    masks = [read_image(m, max_voxels) for m in mask] if mask else []
    masks = masks * len(images) if len(masks) == 1 else masks
    fields: list[Any] = [None] * len(images)
    loaded: list[Any] = []
    for i, path in enumerate(images):

        def load(i: int = i, path: Path = path) -> Any:
            img = read_image(path, max_voxels)
            check_finite(as_array(img)[0], str(path))
            return img

        loaded.append(attempt(path, load))
    if bias_field == "n4":
        from qckit.normalize import N4Settings, n4_correct

        settings = N4Settings(
            shrink_factor=n4_shrink, iterations=iterations, control_points=n4_control_points
        )
        fit_mask = read_image(n4_mask, max_voxels) if n4_mask else None
        for i, img in enumerate(loaded):
            if img is None:
                continue
            res = attempt(
                images[i],
                lambda i=i, img=img: n4_correct(img, fit_mask or (masks[i] if masks else None), settings),
            )
            loaded[i], fields[i] = (None, None) if res is None else res
            if res is not None and not quiet:
                console.print(f"{images[i]}: N4 field {fields[i].field_range[0]:.3g}..{fields[i].field_range[1]:.3g} "
                              f"({fields[i].mask_voxels} voxels)", highlight=False)  # fmt: skip
    nyul = None
    if method == "nyul":
        good = [(img, masks[i] if masks else None) for i, img in enumerate(loaded) if img is not None]
        if not good:
            raise QckitInputError("no image could be read: nothing to learn the Nyul landmarks from")
        nyul = (
            NyulStandardizer.load(landmarks)
            if landmarks and landmarks.exists()
            else NyulStandardizer().fit([g[0] for g in good], [g[1] for g in good] if masks else None)
        )
        saved = nyul.save(landmarks or output / "nyul_landmarks.json")
        if not quiet:
            console.print(f"Nyul landmarks: {saved}")
    items = []
    records: list[dict[str, Any]] = []
    with progress_bar("normalizing", enabled=not quiet) as update:
        update(0, len(images))
        for i, (path, img) in enumerate(zip(images, loaded, strict=True)):
            if img is None:
                continue
            msk = masks[i] if masks else None

            def normalize_one(img: Any = img, msk: Any = msk) -> tuple[Any, dict[str, Any]]:
                if method == "whitestripe":
                    out, fit = whitestripe(img, msk, contrast=contrast, width=width)
                    return out, {
                        **fit.to_dict(),
                        "bin_centres": fit.bin_centres,
                        "smoothed_histogram": fit.smoothed_histogram,
                    }
                if method == "zscore":
                    return zscore(img, msk)
                assert nyul is not None
                return nyul.transform(img, msk), {}

            res = attempt(path, normalize_one)
            update(i + 1, len(images))
            if res is None:
                continue
            out, details = res
            target = write_nifti(out, targets[i])
            arr, _ = as_array(img)
            sel = as_array(msk)[0] > 0 if msk is not None else arr > arr.mean()
            item = {"name": str(path), "before": arr[sel], "after": as_array(out)[0][sel], "fit": details}
            if fields[i] is not None:
                item["bias_field"] = fields[i]
            items.append(item)
            records.append({"input": str(path), "output": str(target), "method": method,
                            **{k: details[k] for k in ("mode", "mean", "sd") if k in details}})  # fmt: skip
            if not quiet:
                console.print(
                    f"{path} -> {target}"
                    + (f" (mode {details['mode']:.4g}, stripe mean {details['mean']:.4g}, SD {details['sd']:.4g})"
                       if method == "whitestripe" else ""),
                    highlight=False, markup=False,
                )  # fmt: skip
    if report and items:
        prov = Provenance(command=command_line(), inputs={"images": len(images), "method": method,
                                                           "failed": len(failed)})  # fmt: skip
        write_report(items, method, prov, report)
    if json_out is not None:
        from qckit.core.jsonio import write_json

        write_json(json_out, {"method": method, "normalized": records,
                              "failed": [{"input": k, "reason": v} for k, v in failed.items()],
                              "command": command_line()})  # fmt: skip
    if not quiet:
        console.print(
            f"{len(items)} of {len(images)} image(s) normalized, {len(failed)} failed", highlight=False
        )
    if failed:  # some inputs failed: 1; none could be used at all: an input error, 2
        raise typer.Exit(EXIT_CHECKS_FAILED if items else EXIT_INPUT_ERROR)
