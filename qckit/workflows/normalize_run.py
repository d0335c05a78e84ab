"""`qckit normalize` as a workflow: read each image (and mask), optionally correct its bias field (N4), normalize
it (WhiteStripe, z-score or Nyul), write it, and write the QC report and the JSON summary. A failure is that
image's only (listed with its reason); the command parses its options and prints."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.core.envelope import write_result
from qckit.core.errors import QckitError, QckitInputError


@dataclass
class NormalizeRun:
    """How many images were given and normalized, those that failed (path -> reason), and one record each."""

    n_images: int
    n_normalized: int
    failed: dict[str, str]
    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


FAR_FROM_REFERENCE = 10.0  # reference-tissue SDs: the masked region lies this far from the stripe in median


def reference_check(path: str, after: Any, method: str) -> str | None:
    """A warning when the normalized values of the region (mask, else foreground) lie far from the reference
    tissue: after WhiteStripe (or z-score) a median |value| beyond FAR_FROM_REFERENCE reference SDs means the
    reference is not this anatomy's (WhiteStripe's white-matter stripe found in fat on an extremity, tumours at
    -38 to -148 SDs), and a fixed bin width then gives degenerate texture features. None when it is not."""
    import numpy as np

    if method not in ("whitestripe", "zscore") or len(after) == 0:
        return None
    med = float(np.median(np.abs(np.asarray(after, float))))
    if med <= FAR_FROM_REFERENCE:
        return None
    ref = "the white-matter stripe" if method == "whitestripe" else "the mask's mean and SD"
    return (
        f"{path}: the region's normalized values lie {med:.0f} reference SDs from {ref} (median |value|): "
        "the reference tissue is probably not this anatomy's (for non-brain MR normalize on a tissue you "
        "outline, e.g. muscle or fat: --mask with -m zscore), and a fixed bin width would give degenerate "
        "features"
    )


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


@dataclass(frozen=True)
class NormalizeOptions:
    method: str = "whitestripe"
    contrast: str = "t1"
    width: float = 0.05
    landmarks: Path | None = None
    overwrite: bool = False
    max_voxels: int | None = None
    bias_field: str = "none"
    n4_shrink: int = 2
    n4_iterations: str = "50,50,50"
    n4_control_points: int = 4
    n4_mask: Path | None = None


def normalize(
    images: list[Path],
    output: Path,
    opts: NormalizeOptions,
    *,
    mask: list[Path] | None = None,
    report: Path | None = None,
    json_out: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    on_failed: Callable[[Path, str], None] | None = None,
) -> NormalizeRun:
    """Normalize every image (module docstring); `on_message` receives one line per step done, `on_failed` each
    image that failed with its reason."""
    method, contrast, width, landmarks = opts.method, opts.contrast, opts.width, opts.landmarks
    overwrite, max_voxels, bias_field = opts.overwrite, opts.max_voxels, opts.bias_field
    n4_shrink, n4_iterations = opts.n4_shrink, opts.n4_iterations
    n4_control_points, n4_mask = opts.n4_control_points, opts.n4_mask
    mask = mask or []

    def say(text: str) -> None:
        if on_message is not None:
            on_message(text)

    from qckit.core.provenance import Provenance, command_line
    from qckit.normalize import as_array, read_image, whitestripe, write_nifti, zscore
    from qckit.normalize.image import check_finite

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
            if on_failed is not None:
                on_failed(path, str(exc))
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
            if res is not None:
                say(f"{images[i]}: N4 field {fields[i].field_range[0]:.3g}..{fields[i].field_range[1]:.3g} x its "
                    f"mean ({fields[i].mask_voxels} voxels)")  # fmt: skip
    nyul = None
    if method == "nyul":
        from qckit.normalize.nyul import NyulStandardizer  # scikit-learn: only when Nyul is asked for

        good = [(img, masks[i] if masks else None) for i, img in enumerate(loaded) if img is not None]
        if not good:
            raise QckitInputError("no image could be read: nothing to learn the Nyul landmarks from")
        nyul = (
            NyulStandardizer.load(landmarks)
            if landmarks and landmarks.exists()
            else NyulStandardizer().fit([g[0] for g in good], [g[1] for g in good] if masks else None)
        )
        saved = nyul.save(landmarks or output / "nyul_landmarks.json")
        say(f"Nyul landmarks: {saved}")
    items = []
    warned: list[str] = []
    records: list[dict[str, Any]] = []
    update = progress or (lambda done, total: None)
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
        far = (
            reference_check(str(path), item["after"], method)
            if msk is not None or method == "whitestripe"
            else None
        )
        if far:
            warned.append(far)
        if fields[i] is not None:
            item["bias_field"] = fields[i]
        items.append(item)
        records.append({"input": str(path), "output": str(target), "method": method,
                        **{k: details[k] for k in ("mode", "mean", "sd") if k in details},
                        **({"bias_field": fields[i].to_dict()} if fields[i] is not None else {})})  # fmt: skip
        say(f"{path} -> {target}"
            + (f" (mode {details['mode']:.4g}, stripe mean {details['mean']:.4g}, SD {details['sd']:.4g})"
               if method == "whitestripe" else ""))  # fmt: skip
    if report and items:
        from qckit.report.normalize_report import write_report  # plotly: only when a report is asked for

        prov = Provenance(command=command_line(), inputs={"images": len(images), "method": method,
                                                           "failed": len(failed)})  # fmt: skip
        write_report(items, method, prov, report)
    if json_out is not None:
        write_result(json_out, kind="normalize", inputs={"images": len(images), "method": method, "bias_field": bias_field}, document={"method": method, "bias_field": bias_field, "normalized": records, "warnings": warned,
                              "failed": [{"input": k, "reason": v} for k, v in failed.items()],
                              "command": command_line()})  # fmt: skip
    return NormalizeRun(len(images), len(items), failed, records, warned)


__all__ = ["NormalizeOptions", "NormalizeRun", "normalize", "output_names"]
