"""Token-aware rate limits (`ratelimits`): buckets, token counting, matching, enforcement."""
