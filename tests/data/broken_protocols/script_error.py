"""A scripted protocol with a bug: a name error on line 6."""
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("buggy script")
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
p.wash("buffer_pump", volume=wash_volume, rate="20 uL/min")
protocol = p.build()
