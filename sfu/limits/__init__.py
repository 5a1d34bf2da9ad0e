"""What one address or browser may do, and how often: token buckets, SDP limits, secret guessing, browser keys."""
