"""Faithful re-statements of the peers' scaling algorithms (HPA, KEDA, llm-d, Dynamo planner, AIBrix KPA),
run on the digital twin with the same signals as our controller, for the scorecard."""
