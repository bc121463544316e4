"""A scripted protocol naming a pump the bench does not have (line 6)."""
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("unknown pump")
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
p.wash("waste_pump", volume="20 uL", rate="20 uL/min")
protocol = p.build()
