"""The estimation core: from counted spots to a sample's marker-positive concentration.

Pure, typed functions with no I/O: detection efficiency measured from the data
(``detection``), capture efficiency from chip geometry and mass transport (``transport``),
concentration with its 95 % interval from the whole error budget (``uncertainty``),
co-localization corrected for chance (``colocalization``), capture kinetics (``kinetics``) and
quality-control flags a real bench can compute (``qc``).
"""
