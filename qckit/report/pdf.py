"""PDF of a qckit HTML page, printed by headless Chromium (`--print-to-pdf`): the same document the HTML is,
rendered by a browser engine, so the PDF carries exactly the HTML's numbers and verdicts and its plotly charts
(drawn by plotly.js before printing) without their toolbars (the pages' print stylesheet hides them; A4 by the
page's @page rule, Letter on request). Chromium is the one maintained renderer that runs plotly's JavaScript
offline; the Python PDF libraries in reach (reportlab, fpdf2) would need every table and chart re-drawn by hand,
which is a second renderer whose numbers could drift from the HTML's.

Chromium is found as `chromium` / `chromium-browser` / `google-chrome` on PATH or `QCKIT_CHROMIUM`; without it
`--pdf` is an input error naming the Debian package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from qckit.core.errors import QckitInputError
from qckit.core.jsonio import default_mode

PAPER = {"a4": (8.27, 11.69), "letter": (8.5, 11.0)}  # inches


def chromium_path() -> str | None:
    """The Chromium executable qckit prints with, or None."""
    env = os.environ.get("QCKIT_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None
    )


def html_to_pdf(html: str | Path, pdf: str | Path, *, paper: str = "a4", timeout_s: float = 120.0) -> Path:
    """Print the page `html` to `pdf` (written atomically: a temporary file in the same folder, then renamed;
    verified to be a PDF). Input error without Chromium, or when the print fails."""
    exe = chromium_path()
    if exe is None:
        raise QckitInputError(
            "--pdf needs headless Chromium: install the Debian package 'chromium' (or set "
            "QCKIT_CHROMIUM to a Chromium or Chrome executable)"
        )
    if paper not in PAPER:
        raise QckitInputError(f"unknown paper {paper!r} (a4, letter)")
    src, dst = Path(html).resolve(), Path(pdf)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    page = src
    if paper != "a4":  # the page's @page rule says A4: Letter is asked for in a copy of the page
        text = src.read_text(encoding="utf-8").replace("@page{size:A4;", "@page{size:Letter;")
        page = src.with_name(f".{src.stem}.letter.html")
        page.write_text(text, encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="qckit-chromium-") as profile:
        cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={profile}", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
               "--virtual-time-budget=120000", f"--print-to-pdf={tmp}", page.as_uri()]  # fmt: skip
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            Path(tmp).unlink(missing_ok=True)
            raise QckitInputError(f"Chromium could not print {src.name}: {exc}") from None
        finally:
            if page != src:
                page.unlink(missing_ok=True)
    data = Path(tmp).read_bytes() if Path(tmp).is_file() else b""
    if res.returncode != 0 or not data.startswith(b"%PDF") or b"%%EOF" not in data[-1024:]:
        Path(tmp).unlink(missing_ok=True)
        raise QckitInputError(f"Chromium could not print {src.name} (exit {res.returncode}): "
                              f"{(res.stderr or '').strip()[-300:]}")  # fmt: skip
    default_mode(tmp)  # as the other outputs (mkstemp made it private)
    os.replace(tmp, dst)
    return dst


__all__ = ["PAPER", "chromium_path", "html_to_pdf"]
