"""Dissection: the media plane by our own fast path, the control plane by tshark field export."""
