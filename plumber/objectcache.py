"""``plumber.objectcache``: the public name of the object-read cache.

The cache is :mod:`plumber.caching.objectcache` (with the other caches that
run in the user's process); scripts and READMEs written against
``plumber.objectcache.cache_object_reads(client)`` keep working through this
name, which adds nothing of its own.
"""

from plumber.caching.objectcache import ObjectCache, cache_object_reads, caching_new_clients

__all__ = ["ObjectCache", "cache_object_reads", "caching_new_clients"]
