"""What a recorded run means.

The report's pipeline: counts and densities (``counts``), capture (``capture``), concentration
(``concentration``), the kept frames (``imagery``), the report itself (``report``, ``summary``,
``plots``).

The estimation core, pure typed functions with no I/O: detection efficiency measured from the
data (``detection``, with ``brightness`` and ``crowding``), capture efficiency from chip
geometry and mass transport (``transport``) or a calibration file (``calibration``),
concentration with its 95 % interval from the whole error budget (``uncertainty``),
co-localization corrected for chance (``colocalization``), capture kinetics (``kinetics``),
quality-control flags a real bench can compute (``qc``), and the recorded spots table into
them (``spots``).
"""
