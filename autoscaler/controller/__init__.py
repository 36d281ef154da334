"""The async shell around the decision core: level-based reconciliation of InferenceAutoscalers, leader
election, one supervised worker per resource, graceful shutdown. See docs/controller.md."""
