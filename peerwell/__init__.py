"""peerwell: self-hosted video rooms for online support groups."""
