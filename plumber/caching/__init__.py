"""Caches that run in the user's process when a plan places them.

The object-read cache for S3-style clients (``objectcache``, public as
:mod:`plumber.objectcache`) and the private on-disk entry store it shares
with the DataLoader sample cache (``entrystore``). Imports only
:mod:`plumber.records`.
"""
