"""Rate sweep: a Python scripted protocol (run it like a file: chipctl run protocols/rate_sweep.py).

Capture from the same sample at increasing flow rates, each for the same number of minutes,
imaging the anti-CD63 and isotype zones after each. The count added by each rate, divided by
the sample volume it used, is the capture efficiency per uL: it falls as the rate rises because
capture is limited by diffusion to the surface (the flux grows only as rate^(1/3)).

A script is for what a file cannot say briefly: here the volume of each step is computed from
the rate so that every rate gets the same time. Scripts build the same typed steps as files,
through the same checks, and are validated before anything moves. Unlike a protocol file, a
script is code and is executed when loaded: run only scripts you trust.
"""

from chipctl.protocol.script import ProtocolBuilder

RATES_UL_MIN = (2, 5, 10)
MINUTES_PER_RATE = 4

p = ProtocolBuilder("Flow-rate sweep", description="Capture on CD63 at 2, 5 and 10 uL/min")
sample = p.parameter("sample", default="MSC small EVs", description="sample name")
imaging = [p.channel("AF647", exposure="50 ms", power="40 %")]

p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
for rate in RATES_UL_MIN:
    volume = rate * MINUTES_PER_RATE  # same time at every rate, so volume grows with rate
    p.sample("sample_pump", rate=f"{rate} uL/min", volume=f"{volume} uL",
             label=f"capture {sample} at {rate} uL/min")
    p.wash("buffer_pump", rate="20 uL/min", volume="20 uL")
    p.image(["CD63", "isotype"], channels=imaging, label=f"image after {rate} uL/min")

protocol = p.build()
