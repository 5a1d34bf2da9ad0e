"""One group meeting: who is in it, what they may do, who speaks, and how much video each publisher sends.

room (members, lobby, hands, chat, captions), participant (one member), control (role-checked data-channel
requests), presence (self-mute, camera, reactions), dominant_speaker and video_quality (pure allocators).
"""
