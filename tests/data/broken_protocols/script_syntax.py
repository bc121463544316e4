"""A scripted protocol that is not valid Python (line 5)."""
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("broken syntax")
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min"
protocol = p.build()
