"""Listener benchmark (issue "QC on arrival"): ingest throughput of `qckit listen` against pynetdicom's own
storage SCP writing the same instances to disk, same run; and the time from a session's last instance to its
dashboard entry.

1. Ingest: the 22 images of the Siemens Aera ACR T1 + T2 session (shared reference data), sent 10 times with new
   SOP Instance UIDs (220 instances, one association) by pynetdicom's SCU to (a) a plain pynetdicom storage SCP
   in its own process whose handler writes preamble + file meta + the received bytes to one file per instance
   (pynetdicom's documented storage SCP), and (b) `qckit listen` (which also fsyncs each file and its folder and
   commits each instance to its SQLite queue before answering: an acknowledged instance survives a crash; the
   quiet period is long, so no session is processed meanwhile). Interleaved rounds, best of N. Target: qckit's
   instances/s >= 0.8x the plain SCP's.
2. Latency: one session (22 instances) to `qckit listen --quiet-seconds 2 --dashboard DIR`; the time from the last
   C-STORE response to dashboard.json listing the session, against the target quiet period + the `qc run` time
   of the same session (measured here as a whole command) + 2 s.

    python benchmarks/bench_listen.py [rounds]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import compile_qckit

DATA = Path(os.environ.get("QCKIT_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ACR = DATA / "hazen" / "acr"
PLAIN_SCP = r"""
import sys
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, evt, AllStoragePresentationContexts, ALL_TRANSFER_SYNTAXES
out = sys.argv[2]
def handle(event):
    with open(f"{out}/{event.request.AffectedSOPInstanceUID}.dcm", "wb") as f:
        f.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(f, event.file_meta)
        f.write(event.request.DataSet.getvalue())
    return 0x0000
ae = AE(ae_title="PLAIN")
for cx in AllStoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
print("ready", flush=True)
ae.start_server(("127.0.0.1", int(sys.argv[1])), block=True, evt_handlers=[(evt.EVT_C_STORE, handle)])
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _datasets(copies: int) -> list:
    import pydicom

    files = sorted((ACR / "Siemens_Aera_1.5T_T1").iterdir()) + sorted(
        (ACR / "Siemens_Aera_1.5T_T2").iterdir()
    )
    out = []
    for k in range(copies):
        for f in files:
            ds = pydicom.dcmread(f)
            if copies > 1:
                ds.SOPInstanceUID = pydicom.uid.generate_uid()
                ds.SeriesInstanceUID = ds.SeriesInstanceUID[:54] + f".{k}"
            out.append(ds)
    return out


def _send(port: int, called: str, datasets: list) -> float:
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title="BENCH")
    ae.requested_contexts = StoragePresentationContexts
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    t = time.perf_counter()
    for ds in datasets:
        assert int(assoc.send_c_store(ds).Status) == 0
    dt = time.perf_counter() - t
    assoc.release()
    return dt


def _wait_line(proc: subprocess.Popen, needle: str, log: Path | None = None, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log is not None and log.exists() and needle in log.read_text():
            return
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-800:] if proc.stderr else ''}")
        time.sleep(0.05)
    raise SystemExit("server did not start")


def main(rounds: int = 3) -> None:
    compile_qckit()
    if not ACR.is_dir():
        print(f"reference data not found at {ACR}: set QCKIT_REFERENCE_DATA")
        return
    qckit = str(Path(sys.executable).with_name("qckit"))
    tmp = Path(tempfile.mkdtemp(prefix="qckit-bench-listen-"))
    data = _datasets(10)
    best = {"plain": float("inf"), "qckit": float("inf")}
    try:
        for r in range(rounds):
            plain_dir, store = tmp / f"plain{r}", tmp / f"store{r}"
            plain_dir.mkdir()
            p1, p2 = _port(), _port()
            plain = subprocess.Popen([sys.executable, "-c", PLAIN_SCP, str(p1), str(plain_dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
            assert plain.stdout is not None and plain.stdout.readline().strip() == b"ready"
            time.sleep(0.3)
            listen = subprocess.Popen([qckit, "listen", "--storage", str(store), "--port", str(p2), "--quiet-seconds",
                                       "600", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
            _wait_line(listen, '"event": "started"', store / "listen.log.jsonl")
            try:
                best["plain"] = min(best["plain"], _send(p1, "PLAIN", data))
                best["qckit"] = min(best["qckit"], _send(p2, "QCKIT", data))
            finally:
                plain.kill()
                listen.terminate()
                listen.wait(60)
                plain.wait(60)
        n = len(data)
        load = os.getloadavg()[0]
        size = f"{data[0].Rows}x{data[0].Columns}"
        print(f"ingest: {n} instances ({size} MR), one association, best of {rounds}; load {load:.2f}")
        print(
            f"  pynetdicom storage SCP, files only: {n / best['plain']:7.1f} instances/s ({best['plain']:.2f} s)"
        )
        print(
            f"  qckit listen (fsync + queue):      {n / best['qckit']:7.1f} instances/s ({best['qckit']:.2f} s)"
        )
        print(f"  ratio qckit / plain = {best['plain'] / best['qckit']:.2f}x   (target >= 0.8x)")
        # latency: last instance -> dashboard entry
        folder = tmp / "session"
        shutil.copytree(ACR / "Siemens_Aera_1.5T_T1", folder / "t1")
        shutil.copytree(ACR / "Siemens_Aera_1.5T_T2", folder / "t2")
        t = time.perf_counter()
        subprocess.run([qckit, "qc", "run", str(folder), "--no-store", "-o", str(tmp / "qc"), "-q"],
                       capture_output=True)  # fmt: skip
        qc_time = time.perf_counter() - t
        store, dash, port = tmp / "lat-store", tmp / "dash", _port()
        listen = subprocess.Popen([qckit, "listen", "--storage", str(store), "--port", str(port), "--quiet-seconds",
                                   "2", "--dashboard", str(dash), "-q"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)  # fmt: skip
        _wait_line(listen, '"event": "started"', store / "listen.log.jsonl")
        try:
            _send(port, "QCKIT", _datasets(1))
            last = time.perf_counter()
            deadline = last + 120
            while time.perf_counter() < deadline:
                p = dash / "dashboard.json"
                if p.exists() and any(
                    s.get("state") == "done" for s in json.loads(p.read_text())["listener"]
                ):
                    break
                time.sleep(0.05)
            latency = time.perf_counter() - last
        finally:
            listen.terminate()
            listen.wait(60)
        print(
            f"latency: last instance -> dashboard entry {latency:.2f} s; target quiet 2 s + qc run "
            f"{qc_time:.2f} s + 2 s = {2 + qc_time + 2:.2f} s ({'met' if latency <= 4 + qc_time else 'NOT met'})"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
