"""FHIR R4 (4.0.1) under /fhir: CO readings as Observations, referrals as ServiceRequests."""
