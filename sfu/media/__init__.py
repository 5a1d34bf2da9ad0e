"""The packet path: a publisher's RTP in, the same encoded frames out to every listener, never decoded.

framing (RTP -> encoded frames), codecs (what can be forwarded, keyframes), publication (one incoming
track, fan-out), subscription (one forwarded copy), layer_allocation (which simulcast layer each listener
gets), media_session (what a room needs of a connection) and peer_session (one RTCPeerConnection).
"""
