"""A script that builds steps but never sets `protocol`."""
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("forgot to build")
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
