"""Gate rules: how each step mixes preference optimisation and SFT. One file per rule, the paper's and the others'.

A new rule is one file here (a `GateRule` subclass) plus one YAML line; the gate callback turns its output into
the step plan the module executes (`wavalign.gates.plan`).
"""

from wavalign.gates.base import GateOutput, GateRule, TokenInputs
from wavalign.gates.chord import CHORDGate
from wavalign.gates.dynamic import DynamicGate
from wavalign.gates.fixed import FixedGate, RLOnly, SFTOnly
from wavalign.gates.hpt import HPTGate
from wavalign.gates.luffy import LUFFYGate
from wavalign.gates.relift import ReLIFTGate
from wavalign.gates.srft import SRFTGate

__all__ = [
    "CHORDGate",
    "DynamicGate",
    "FixedGate",
    "GateOutput",
    "GateRule",
    "HPTGate",
    "LUFFYGate",
    "RLOnly",
    "ReLIFTGate",
    "SFTOnly",
    "SRFTGate",
    "TokenInputs",
]
