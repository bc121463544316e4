"""chipctl: controller and analyzer for microfluidic immunoaffinity exosome-capture chips."""

__version__ = "0.1.0"
