"""Delivering referral events to stop-smoking services as signed Standard Webhooks.

``service`` writes outbox rows in the caller's transaction and manages destinations and secrets;
``admin`` lists what has not arrived and sends it again; ``relay`` claims due rows and records
each attempt; ``sending`` makes the HTTP request; ``webhooks`` builds and signs the bodies;
``safety`` decides which addresses may be used; ``jobs`` hosts the worker's loop.
"""
