"""The DICOM receiver: a pynetdicom storage SCP (every storage SOP class, every transfer syntax pynetdicom knows)
and verification SCP (C-ECHO).

A C-STORE is answered only after the instance is on disk (`storage.write_instance`) and recorded in the queue
(`queue.Queue.add_instance`): success (0x0000) then means the instance survives a crash. A resent instance (same
SOP Instance UID) is answered with success and not written again. A disk that cannot take the file is "out of
resources" (0xA700); a dataset without Study or Series Instance UID "cannot understand" (0xC000). Associations
from calling AE titles outside `allow_ae` (when given) are rejected by pynetdicom; idle or stalled associations
are closed after `timeout` seconds.
"""

from __future__ import annotations

import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qckit.listen import storage
from qckit.listen.log import EventLog
from qckit.listen.queue import Queue, SessionClosed

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


@dataclass
class Receiver:
    queue: Queue
    storage: Path
    log: EventLog
    stored: int = 0
    duplicates: int = 0

    def folder_of(self, session_id: int) -> Path:
        return self.storage / "sessions" / f"{session_id:06d}"

    def store(self, calling_ae: str, sop_uid: str, study_uid: str, series_uid: str, file_meta: Any,
              dataset: bytes) -> int:  # fmt: skip
        """Write and record one instance; the DIMSE status to answer."""
        if self.queue.known(sop_uid):
            self.duplicates += 1
            self.log("duplicate", calling_ae=calling_ae, instance=storage.key(sop_uid))
            return SUCCESS
        group = (
            calling_ae  # one sender's burst is one session; qc run groups it into QC sessions (scanner, date)
        )
        for _ in range(3):  # the session may close between choosing it and recording the instance: next one
            session = self.queue.session_for(group, calling_ae, self.folder_of)
            target = Path(session.folder) / storage.key(series_uid) / f"{storage.key(sop_uid)}.dcm"
            try:
                storage.write_instance(self.storage, target, file_meta, dataset)
            except OSError as exc:
                self.log("write failed", level="error", calling_ae=calling_ae, session=session.id,
                         reason=exc.strerror or str(exc))  # fmt: skip
                return OUT_OF_RESOURCES
            try:
                new = self.queue.add_instance(sop_uid, session.id, storage.key(series_uid), str(target))
            except SessionClosed:
                os.unlink(target)
                continue
            if not new:  # a concurrent resend won the race: keep one copy
                self.duplicates += 1
                return SUCCESS
            self.stored += 1
            self.log("stored", calling_ae=calling_ae, session=session.id, series=storage.key(series_uid),
                     instance=storage.key(sop_uid))  # fmt: skip
            return SUCCESS
        return OUT_OF_RESOURCES


def _handlers(rx: Receiver) -> list[tuple[Any, Any]]:
    from pynetdicom import evt

    def on_store(event: Any) -> int:
        calling = _ae(event.assoc.requestor.ae_title)
        try:
            ds = event.dataset
            study, series = ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID")
            sop = str(event.request.AffectedSOPInstanceUID or ds.get("SOPInstanceUID") or "")
            if not study or not series or not sop:
                rx.log("refused instance", level="warning", calling_ae=calling,
                       reason="no Study, Series or SOP Instance UID")  # fmt: skip
                return CANNOT_UNDERSTAND
            return rx.store(
                calling, sop, str(study), str(series), event.file_meta, event.request.DataSet.getvalue()
            )
        except Exception as exc:  # never let one instance take the server down
            rx.log("refused instance", level="error", calling_ae=calling, reason=f"{type(exc).__name__}")
            return CANNOT_UNDERSTAND

    def on_echo(event: Any) -> int:
        rx.log("echo", calling_ae=_ae(event.assoc.requestor.ae_title))
        return SUCCESS

    connections: dict[int, tuple[float, bool]] = {}  # association id -> (opened at, negotiated)

    def on_open(event: Any) -> None:
        connections[id(event.assoc)] = (time.monotonic(), False)

    def on_accepted(event: Any) -> None:
        connections[id(event.assoc)] = (connections.get(id(event.assoc), (time.monotonic(), True))[0], True)
        rx.log("association accepted", calling_ae=_ae(event.assoc.requestor.ae_title),
               address=event.assoc.requestor.address)  # fmt: skip

    def on_rejected(event: Any) -> None:
        connections[id(event.assoc)] = (connections.get(id(event.assoc), (time.monotonic(), True))[0], True)
        rx.log("association rejected", level="warning", calling_ae=_ae(event.assoc.requestor.ae_title),
               address=event.assoc.requestor.address)  # fmt: skip

    def on_aborted(event: Any) -> None:
        rx.log("association aborted", level="warning", address=event.assoc.requestor.address)

    def on_close(event: Any) -> None:
        opened, negotiated = connections.pop(id(event.assoc), (time.monotonic(), False))
        if not negotiated:  # garbage bytes, a port scan, or a caller that said nothing until the timeout
            rx.log("connection closed without an association", level="warning",
                   address=event.assoc.requestor.address, seconds=round(time.monotonic() - opened, 2))  # fmt: skip

    return [(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, on_echo), (evt.EVT_ACCEPTED, on_accepted),
            (evt.EVT_REJECTED, on_rejected), (evt.EVT_ABORTED, on_aborted), (evt.EVT_CONN_OPEN, on_open),
            (evt.EVT_CONN_CLOSE, on_close)]  # fmt: skip


def _ae(title: Any) -> str:
    text = title.decode("ascii", "replace") if isinstance(title, bytes) else str(title)
    return "".join(ch for ch in text.strip() if ch.isprintable())[:16]


def tls_context(cert: Path, key: Path, ca: Path | None = None) -> ssl.SSLContext:
    """Server-side TLS (DICOM TLS, PS3.15 B.1); with `ca`, callers must present a certificate it signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if ca is not None:
        ctx.load_verify_locations(str(ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def start_server(rx: Receiver, *, ae_title: str, host: str, port: int, allow_ae: list[str], timeout: float,
                 ssl_context: ssl.SSLContext | None = None, max_associations: int = 10) -> Any:  # fmt: skip
    """The running server (threads); `.shutdown()` stops it."""
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    if allow_ae:
        ae.require_calling_aet = list(allow_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.maximum_associations = max_associations
    server = ae.start_server((host, port), block=False, evt_handlers=_handlers(rx), ssl_context=ssl_context)
    rx.log("listening", ae_title=ae_title, host=host, port=port, allow_ae=list(allow_ae), tls=ssl_context is not None,
           started=time.time())  # fmt: skip
    return server
