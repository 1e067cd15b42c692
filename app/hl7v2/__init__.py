"""HL7 v2: CO readings as ORU^R01 messages, over HTTP (``POST /hl7/v2``) or MLLP (``exhale mllp``).

``parse`` and ``ack`` are pure (text in, values out); ``mapping`` turns a parsed message into the
same ``ReadingCreate`` the REST API takes; ``service`` records it through the readings service;
``mllp`` is the framing and the asyncio listener.
"""
