"""Telling people: alerts to the data owner, webhooks to subscribers, and the network guard they share.

Public modules: :mod:`.alerts` (bilingual alert messages and their delivery), :mod:`.webhooks`
(signed deliveries of new releases to subscribers), :mod:`.netguard` (refuses addresses a delivery
must not reach).
"""
