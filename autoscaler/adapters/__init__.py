"""I/O behind the ports: each module talks to one external system and maps its errors to
:mod:`autoscaler.errors`."""
