"""Table builders: one module per protocol; importing them registers their frames."""

from . import (  # noqa: F401  (each module registers its frames with capture.register_frame on import)
    anomalies,
    candidates,
    datachannels,
    dtls,
    packets,
    rtp,
    sdp,
    sessions,
    signalling,
    srtp,
    stun,
)
