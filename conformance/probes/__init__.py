"""Probe stage: black-box probes that call a target through the openai SDK."""

from conformance.probes.client import Endpoint, Reply
from conformance.probes.registry import Probe, ProbeContext, probe, registered

__all__ = ["Endpoint", "Probe", "ProbeContext", "Reply", "probe", "registered"]
