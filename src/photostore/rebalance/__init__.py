"""Moving users between shards and objects between buckets, online."""
