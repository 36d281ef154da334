"""The digital twin: trace loaders, fleet model, fakes of the ports, the fast engine and the scorecard.

Never imports adapters, the controller or kubernetes_asyncio (enforced by import-linter).
"""
