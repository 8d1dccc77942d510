"""Hybrid SFT/RL rules beside the paper's gate (one file per rule) and the generic loss weights every rule maps to."""

from wavalign.hybrid.chord import CHORDGate
from wavalign.hybrid.hpt import HPTGate
from wavalign.hybrid.luffy import LUFFYGate
from wavalign.hybrid.relift import ReLIFTGate
from wavalign.hybrid.srft import SRFTGate

__all__ = ["CHORDGate", "HPTGate", "LUFFYGate", "ReLIFTGate", "SRFTGate"]
