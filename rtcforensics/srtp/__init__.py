"""SRTP/SRTCP decryption straight from a capture: SDES keys, and DTLS-SRTP keys derived from a keylog."""
