"""The WebSocket path: join, admission, SDP and events between a browser and its room.

websocket (rooms and seats, join resolution, the socket loop) and socket_sender (one socket's bounded send
queue). The schemas of every message are sfu/messages.py, shared with the data channel.
"""
