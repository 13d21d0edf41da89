"""Network front ends: ApertureDB/VDMS TCP protocol and the REST API, sharing one engine."""
