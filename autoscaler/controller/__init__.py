"""The async shell: watches InferenceAutoscalers and reconciles each one level-based every control interval
(observe → decide → patch what changed → write status if changed → requeue), under a Lease."""
