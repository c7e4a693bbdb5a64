"""Learning agents: networks, replay/context buffers, the PEARL encoder and discrete SAC.

One module per concept: `config` (the agent's grouped hyper-parameters and their rules;
torch-free), `networks` (actor/critic architectures), `buffers` (replay and context buffers),
`encoder` (PEARL's q_phi(z|c)), `updates` (the two update rules), `sac` (the agent).

Importing this package imports no torch: the names below load their module when first used.
"""

from __future__ import annotations

from importlib import import_module

_WHERE = {"ActionSpec": "networks", "ContextBuffer": "buffers", "ReplayBuffer": "buffers",
          "ContextEncoder": "encoder", "PerUserContextEncoder": "encoder",
          "DiscreteSACAgent": "sac", "NonFiniteLossError": "updates", "SACConfig": "config"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_WHERE)
