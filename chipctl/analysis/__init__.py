"""What a recorded run means.

The estimation core, pure typed functions with no I/O: detection efficiency measured from the
data (``detection``, with ``brightness`` and ``crowding``), capture efficiency from chip
geometry and mass transport (``transport``) or a calibration file (``calibration``),
concentration with its 95 % interval from the whole error budget (``uncertainty``),
co-localization corrected for chance (``colocalization``), capture kinetics (``kinetics``),
quality-control flags a real bench can compute (``qc``), and the recorded spots table into
them (``spots``).

Wired to a run folder: ``evidence`` reads the records once, ``labels`` says which channel
reads which zone, ``provenance`` reads the sample entry, ``capture`` and ``zone_detection``
give each zone's terms, ``concentration`` combines them, ``coexpression`` and ``checks`` add
co-expression and QC, ``summary`` / ``report`` / ``report_sections`` write the report,
``compare`` puts runs side by side and ``calibrate_run`` writes a calibration file.
"""
