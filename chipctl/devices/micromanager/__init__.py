"""Microscopes run through Micro-Manager (pymmcore-plus): the `micromanager` bench driver.

A bench entry names a Micro-Manager configuration file and maps its devices to chipctl's
roles (chipctl.config.devices.MicroManagerSettings); `scope.make_micromanager` builds the bench
device, whose roles are the camera, stage and illuminator the engine uses. pymmcore-plus is
imported only when the configuration is loaded, so chipctl works without it on benches that do
not use Micro-Manager.
"""
