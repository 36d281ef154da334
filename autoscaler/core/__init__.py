"""The pure decision core: ``decide(spec, observation, state, now) -> (Decision, State)``.

Only stdlib, numpy, scipy and ``autoscaler.api`` may be imported here (an import-linter contract enforces it):
no asyncio, no I/O, no logging, no clocks. Time and state come in as arguments and go out as return values;
the core explains itself with reasons, which the shell turns into conditions, Events and logs.
"""
