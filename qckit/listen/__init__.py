"""QC on arrival (`qckit listen`): a DICOM storage service class provider that writes each received instance
durably, groups instances into sessions (calling AE title and study) that close when the sender has been quiet,
and hands each closed session, once, to the QC workflow.

- `queue`: the durable queue (SQLite): instances, sessions and their states, alerts sent;
- `storage`: instances written atomically, owner-only, before the C-STORE is answered;
- `scp`: the pynetdicom server (C-ECHO, C-STORE), calling AE titles allowed, timeouts, TLS;
- `routes`: which sessions go to which phantom and protocol, and each scanner's QC schedule (YAML, validated);
- `alerts`: e-mail (SMTP) and webhook (JSON POST) notifications, de-duplicated per scanner and measurement;
- `log`: structured JSON-lines logging without patient identifiers.
"""
