"""The reference server: a real OpenAI-style HTTP server over a deterministic toy model.

Its semantics are switched (``switches.Switches``) so the suite's own tests can show every
verdict flip when the server behaves differently. ``dialect.switches_for`` builds the
switches of a profile from the specs; ``server.start`` runs one in a background thread.

The package imports none of its modules: a replay checks the catalog against the switches,
and needs neither the web framework nor the server.
"""
