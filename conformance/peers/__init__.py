"""Real third-party OpenAI-compatible servers ("peers") to record the suite against.

`tinymodel` builds the tiny model they serve, `servers` installs, starts and stops them, `smoke`
checks one with the ``openai`` SDK, and ``python -m conformance.peers`` ties these together
(see docs/peers.md).
"""
