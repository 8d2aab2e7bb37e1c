"""The reference server: a real OpenAI-style HTTP server over a deterministic toy model.

Its semantics are switched (``Switches``) so the suite's own tests can show every verdict
flip when the server behaves differently. ``dialect.switches_for`` builds the switches of a
profile from the specs; ``server.start`` runs one in a background thread.
"""

from conformance.reference.app import create_app
from conformance.reference.dialect import check_switch_mappings, switches_for
from conformance.reference.server import RunningServer, ServerConfig, serve, start
from conformance.reference.switches import SWITCH_NAMES, Switches, apply_settings, switch_values

__all__ = [
    "SWITCH_NAMES",
    "RunningServer",
    "ServerConfig",
    "Switches",
    "apply_settings",
    "check_switch_mappings",
    "create_app",
    "serve",
    "start",
    "switch_values",
    "switches_for",
]
