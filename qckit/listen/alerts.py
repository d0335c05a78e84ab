"""Alerts (`qckit listen --alerts FILE`): when a session has a measurement beyond its action limit or a control
rule fires on it, one e-mail (SMTP) and one webhook (a JSON POST) per scanner and measurement, naming the scanner,
the session, the measurement, its value and limit (or the rules that fired) and where the report is. A measurement
that alerted is not alerted again until it has passed once more (the queue keeps what was sent). No patient
identifier is ever in an alert: the scanner key, qckit's session numbers and the measured values only.

The file (YAML, validated):

    smtp: {host: mail.example.org, port: 25, sender: qckit@example.org, to: [physics@example.org],
           starttls: false, username: null, password_env: null, timeout: 10}
    webhook: {url: https://chat.example.org/hooks/qc, timeout: 10}
"""

from __future__ import annotations

import os
import smtplib
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qckit.core import jsonio
from qckit.core.definitions import load_yaml, validate_definition
from qckit.core.errors import QckitInputError


class AlertsError(QckitInputError):
    """The alerts file is missing, not YAML or not valid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Smtp(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(min_length=3)
    to: tuple[str, ...] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    timeout: float = Field(10, gt=0, le=300)


class Webhook(_Strict):
    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(10, gt=0, le=300)


class AlertsConfig(_Strict):
    smtp: Smtp | None = None
    webhook: Webhook | None = None


def load_alerts(path: str | Path) -> AlertsConfig:
    p = Path(path)
    if not p.is_file():
        raise AlertsError(f"{p}: no such alerts file")
    return validate_definition(AlertsConfig, load_yaml(p, AlertsError), p, noun="an alerts file",
                               what="alerts file", error=AlertsError)  # fmt: skip


def message(alert: dict[str, Any]) -> tuple[str, str]:
    """(subject, text) of one alert."""
    what = (f"{alert['measurement']} = {alert['value']:g} {alert.get('unit') or ''} beyond its action limit "
            f"({alert.get('limit') or 'no limit text'})" if alert["kind"] == "action limit"
            else f"{alert['measurement']}"
                 + (f" = {alert['value']:g}{' ' + alert['unit'] if alert.get('unit') else ''}"
                    if alert.get("value") is not None else "")
                 + f": control rule(s) {', '.join(alert.get('rules') or [])} fired ({alert.get('limit') or 'control chart'})")  # fmt: skip
    subject = f"[qckit QC] {alert['scanner']}: {alert['measurement']} ({alert['kind']})"
    text = "\n".join([
        f"Scanner: {alert['scanner']}",
        f"Session: listener session {alert['listener_session']}, QC history session {alert.get('history_session')}",
        f"Finding: {what}",
        f"Report: {alert.get('report') or '(none written)'}",
        f"Session verdict: {alert.get('verdict')}",
    ])  # fmt: skip
    return subject, text + "\n"


def send(alert: dict[str, Any], cfg: AlertsConfig) -> list[str]:
    """Send one alert on every configured channel; the channels that took it. A channel that fails raises
    OSError naming it (the caller logs it and tries again with the next session)."""
    sent: list[str] = []
    subject, text = message(alert)
    if cfg.smtp is not None:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, cfg.smtp.sender, ", ".join(cfg.smtp.to)
        msg.set_content(text)
        try:
            with smtplib.SMTP(cfg.smtp.host, cfg.smtp.port, timeout=cfg.smtp.timeout) as smtp:
                if cfg.smtp.starttls:
                    smtp.starttls()
                if cfg.smtp.username:
                    smtp.login(cfg.smtp.username, os.environ.get(cfg.smtp.password_env or "", ""))
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise OSError(f"e-mail to {cfg.smtp.host}:{cfg.smtp.port} failed: {exc}") from None
        sent.append("email")
    if cfg.webhook is not None:
        body = jsonio.dumps({"subject": subject, "text": text, **alert}, indent=None).encode("utf-8")
        req = urllib.request.Request(cfg.webhook.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=cfg.webhook.timeout) as resp:  # noqa: S310 - http(s) only
                if resp.status >= 300:
                    raise OSError(f"HTTP {resp.status}")
        except OSError as exc:
            raise OSError(f"webhook {cfg.webhook.url} failed: {exc}") from None
        sent.append("webhook")
    return sent
