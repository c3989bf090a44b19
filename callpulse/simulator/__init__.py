"""Simulated contact-centre traffic: a pure model (``model``), centres (``profiles``), Kafka loop.

The producer is not imported here, so the model can be used without aiokafka.
"""

from callpulse.simulator.model import Event, Simulation
from callpulse.simulator.profiles import (
    AgentProfile,
    CentreProfile,
    PauseReason,
    QueueProfile,
    SurveyProfile,
    default_centre,
)

__all__ = [
    "AgentProfile",
    "CentreProfile",
    "Event",
    "PauseReason",
    "QueueProfile",
    "Simulation",
    "SurveyProfile",
    "default_centre",
]
