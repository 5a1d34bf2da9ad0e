"""The packet path: a publisher's RTP packets in, the same payloads out to every listener, renumbered, never
assembled into frames and never decoded.

codecs (what can be forwarded, keyframe starts per packet, VP8 payload descriptors), publication (one
incoming track, fan-out), subscription (one forwarded copy: renumbering, queue, drop policy), layer_allocation
(which simulcast layer each listener gets), media_session (what a room needs of a connection) and
peer_session (one RTCPeerConnection).
"""
