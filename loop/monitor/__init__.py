"""Per-round monitoring: diversity, calibration, data hygiene and alarms.

`monitor.Monitor` holds the controller's entry points; `config.MonitorConfig` the `monitor`
section; `metrics.MEANINGS` what each logged key means. Nothing is imported here, so loading
the config does not load the metric libraries.
"""
