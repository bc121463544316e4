"""Protocols: the typed, immutable steps that files and scripts compile to."""

from chipctl.protocol.loader import load_protocol, parse_protocol
from chipctl.protocol.model import (
    ChannelSetting,
    Flow,
    Image,
    Monitor,
    Parameter,
    ParameterError,
    Prime,
    Prompt,
    Protocol,
    Repeat,
    Step,
    Valve,
    Wait,
)

__all__ = [
    "ChannelSetting", "Flow", "Image", "Monitor", "Parameter", "ParameterError", "Prime",
    "Prompt", "Protocol", "Repeat", "Step", "Valve", "Wait", "load_protocol", "parse_protocol",
]
