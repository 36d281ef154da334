"""Faithful re-statements of the peers' scaling algorithms (HPA, KEDA, llm-d, AIBrix KPA),
run on the digital twin with the same signals as our controller, for the scorecard. Each module's docstring
cites its source; docs/control.md describes them side by side."""

from autoscaler.core.baselines.hpa import HPAPolicy
from autoscaler.core.baselines.keda import KEDAPolicy
from autoscaler.core.baselines.kpa import KPAPolicy
from autoscaler.core.baselines.llmd import LLMDPolicy
from autoscaler.core.baselines.static import StaticPolicy

__all__ = ["HPAPolicy", "KEDAPolicy", "KPAPolicy", "LLMDPolicy", "StaticPolicy"]
