"""Learning agents: networks, replay/context buffers, the PEARL encoder and discrete SAC.

One module per concept: `networks` (actor/critic architectures), `buffers` (replay and context
buffers), `encoder` (PEARL's q_phi(z|c)), `sac` (the agent, its config and losses).
"""

from .buffers import ContextBuffer, ReplayBuffer
from .encoder import ContextEncoder, PerUserContextEncoder
from .networks import ActionSpec
from .sac import DiscreteSACAgent, NonFiniteLossError, SACConfig

__all__ = ["ActionSpec", "ContextBuffer", "ContextEncoder", "DiscreteSACAgent",
           "NonFiniteLossError", "PerUserContextEncoder", "ReplayBuffer", "SACConfig"]
