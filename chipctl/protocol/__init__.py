"""Protocols: the typed, immutable steps that files and scripts compile to.

The step types are in chipctl.protocol.model; loading is chipctl.protocol.loader (files) and
chipctl.protocol.script (Python scripted protocols); checking against a bench is
chipctl.protocol.validate.
"""

from chipctl.protocol.loader import load_protocol, parse_protocol
from chipctl.protocol.model import Parameter, ParameterError, Protocol, Step

__all__ = ["Parameter", "ParameterError", "Protocol", "Step", "load_protocol", "parse_protocol"]
