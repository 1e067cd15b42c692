"""Talking to handheld CO monitors; imports nothing from the rest of exhale.

- ``transport``: bytes over pyserial (USB serial, pseudo-terminals, ``socket://``, ``loop://``).
- ``protocol``: the exhale reference protocol, pure (``PROTOCOL.md``).
- ``drivers``: ``MonitorDriver`` and ``ReferenceDriver``; one file per maker's protocol.
- ``simulator``: a monitor on a pseudo-terminal, scenarios as data, faults on demand.
- ``csv_import``: results from monitor software's CSV exports.
- ``bridge`` and ``reading_queue``: forward results to the service, durably.
- ``cli``: ``simulator_command`` and ``bridge_command`` for the main CLI.
"""
