"""Table builders: one module per protocol; importing them registers their frames."""

import importlib

# Each module registers its frames with capture.register_frame on import. A module that is not written
# yet is simply absent; every listed module that exists must import cleanly.
_MODULES = ("packets", "rtp", "stun", "dtls", "signalling", "sdp", "candidates", "sessions", "datachannels",
            "anomalies")
for _m in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_m}")
    except ModuleNotFoundError as _e:  # only a missing *module of ours* is tolerated
        if _e.name != f"{__name__}.{_m}":
            raise
