"""A scripted protocol with a wrong unit on line 6."""
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("bad unit")
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
p.sample("sample_pump", rate="5 uL", volume="25 uL")
protocol = p.build()
